package boot

import (
	"fmt"
	"strings"
)

// maxLine keeps every log line short, so that one write fits a console ring.
const maxLine = 160

// logger writes short lines to the console without ever blocking. Lines
// logged before the console is open are kept and written by open.
type logger struct {
	write   func(p []byte) // nil until open
	pending []string
}

func (l *logger) printf(format string, args ...any) {
	line := "xsinit: " + fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", " ")
	if len(line) > maxLine {
		line = line[:maxLine-3] + "..."
	}
	line += "\n"
	if l.write == nil {
		l.pending = append(l.pending, line)
		return
	}
	l.write([]byte(line))
}

func (l *logger) open() {
	l.write = openConsole()
	for _, line := range l.pending {
		l.write([]byte(line))
	}
	l.pending = nil
}
