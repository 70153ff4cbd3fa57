package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ringclient"
)

const callTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g, err := fake.AttachGuestFromEnv()
	if err != nil {
		fmt.Fprintln(stderr, "fakeguest:", err)
		return 2
	}
	defer g.Close()
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		fmt.Fprintln(stderr, "fakeguest:", err)
		return 2
	}
	defer c.Close()

	lines := args
	if len(args) == 0 {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintln(stderr, "fakeguest: reading script:", err)
			return 1
		}
	}
	for _, line := range lines {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		cmd, err := parseCommand(line)
		if err != nil {
			fmt.Fprintf(stderr, "fakeguest: %q: %v\n", line, err)
			return 1
		}
		out, err := execute(c, cmd)
		var re *ringclient.ReplyError
		switch {
		case errors.As(err, &re):
			out = "error " + re.Name
		case err != nil:
			fmt.Fprintf(stderr, "fakeguest: %q: %v\n", line, err)
			return 1
		}
		fmt.Fprintln(stdout, out)
	}
	return 0
}

func execute(c *ringclient.Client, cmd command) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	a := cmd.args
	switch cmd.op {
	case "write":
		return "ok", c.Write(ctx, a[0], []byte(a[1]))
	case "read":
		v, err := c.Read(ctx, a[0])
		return "value " + string(v), err
	case "mkdir":
		return "ok", c.Mkdir(ctx, a[0])
	case "rm":
		return "ok", c.Rm(ctx, a[0])
	case "dir":
		names, err := c.Directory(ctx, a[0])
		return strings.TrimSpace("dir " + strings.Join(names, " ")), err
	case "watch":
		return "ok", c.Watch(ctx, a[0], a[1])
	case "unwatch":
		return "ok", c.Unwatch(ctx, a[0], a[1])
	case "event":
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return "", errors.New("connection closed")
			}
			return "event " + ev.Path + " " + ev.Token, nil
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for a watch event: %w", ctx.Err())
		}
	}
	return "", fmt.Errorf("unknown command %q", cmd.op)
}
