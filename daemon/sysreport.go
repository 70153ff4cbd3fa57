package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// meminfoFields are the /proc/meminfo lines CONTROL memreport shows in a
// stub domain, where they account for the whole domain: what is free, the
// initramfs's files (Shmem/Unevictable: ramfs pages, never reclaimed), the
// process (AnonPages) and the kernel's own (Slab, KernelStack, PageTables).
var meminfoFields = []string{"MemTotal", "MemFree", "MemAvailable", "Cached", "Shmem",
	"Unevictable", "AnonPages", "Mapped", "Slab", "KernelStack", "PageTables"}

// systemReport is memreport's system part: selected /proc/meminfo lines and
// the process's resident set (VmRSS), in kB as the kernel gives them.
func systemReport() string {
	var b strings.Builder
	b.WriteString("system (kB):")
	if mi, err := os.ReadFile("/proc/meminfo"); err == nil {
		b.WriteString(pickFields(string(mi), meminfoFields))
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		b.WriteString(pickFields(string(st), []string{"VmRSS"}))
	}
	if up, err := os.ReadFile("/proc/uptime"); err == nil {
		s, _, _ := strings.Cut(strings.TrimSpace(string(up)), " ")
		fmt.Fprintf(&b, " uptime=%ss", s)
	}
	return b.String() + "\n"
}

// pickFields renders the "Name: N kB" lines named in want as " Name=N".
func pickFields(text string, want []string) string {
	vals := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if f := strings.Fields(rest); len(f) >= 1 {
			vals[name] = f[0]
		}
	}
	var b strings.Builder
	for _, n := range want {
		if v, ok := vals[n]; ok {
			fmt.Fprintf(&b, " %s=%s", n, v)
		}
	}
	return b.String()
}

// logFirstAnswer is the stub's last boot milestone: the guest uptime when
// the store answered its first request (kernel entry is uptime 0; init's
// "xsinit: uptime" lines have the others).
func logFirstAnswer(log *slog.Logger) func() {
	return func() {
		up, _ := os.ReadFile("/proc/uptime")
		s, _, _ := strings.Cut(strings.TrimSpace(string(up)), " ")
		log.Info("first request answered", "uptime", s+"s")
	}
}
