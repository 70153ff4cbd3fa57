package store

import (
	"strconv"
	"strings"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// validPathChars reports whether s uses only the characters
// docs/misc/xenstore.txt allows in a path: alphanumerics and -/_@.
func validPathChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '/', c == '_', c == '@':
		default:
			return false
		}
	}
	return true
}

// domainPath is the home directory of a domain, /local/domain/<domid>.
func domainPath(domid uint32) string {
	return "/local/domain/" + strconv.FormatUint(uint64(domid), 10)
}

// homeOf reports the domain whose home directory (/local/domain/<domid>)
// is p or holds p.
func homeOf(p string) (uint32, bool) {
	const pre = "/local/domain/"
	if !strings.HasPrefix(p, pre) {
		return 0, false
	}
	j := len(pre)
	for j < len(p) && p[j] != '/' {
		j++
	}
	digits := p[len(pre):j]
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false // not the canonical spelling of a domid
	}
	id, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(id), true
}

// localPrefixLen is the length of a leading "/local/domain/<digits>/", the
// part C xenstored leaves out when it applies the path-max quota (so a
// guest's relative limit means the same whatever its domid).
func localPrefixLen(p string) int {
	const pre = "/local/domain/"
	if !strings.HasPrefix(p, pre) {
		return 0
	}
	i := len(pre)
	j := i
	for j < len(p) && j-i < 5 && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	if j == i || j >= len(p) || p[j] != '/' {
		return 0
	}
	return j + 1
}

// canonicalPath turns a request's path into an absolute one. A path not
// starting with / or @ is relative to the caller's home directory. The rules
// are those of docs/misc/xenstore.txt; pathMax (0 = none) limits the part
// after /local/domain/<id>/ for unprivileged callers, as C xenstored's
// path-max quota does.
func canonicalPath(p string, home string, allowSpecial bool, pathMax int) (abs string, relative bool, err error) {
	if p == "" || !validPathChars(p) {
		return "", false, syscall.EINVAL
	}
	if p[0] == '@' && !allowSpecial {
		return "", false, syscall.EINVAL
	}
	abs = p
	if p[0] != '/' && p[0] != '@' {
		abs = home + "/" + p
		relative = true
	}
	if (len(abs) > 1 && abs[len(abs)-1] == '/') || strings.Contains(abs, "//") {
		return "", false, syscall.EINVAL
	}
	if len(abs) > wire.AbsPathMax {
		return "", false, syscall.EINVAL
	}
	if pathMax > 0 && len(abs)-localPrefixLen(abs) > pathMax {
		return "", false, syscall.EINVAL
	}
	return abs, relative, nil
}

// parentPath is the parent of an absolute path other than "/".
func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// baseName is the last component of an absolute path other than "/".
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// childPath joins a parent path and a leaf name.
func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// isSpecial reports whether p names a special (@...) path.
func isSpecial(p string) bool { return p != "" && p[0] == '@' }

// parseDomid parses a domid argument as C xenstored 4.22 does for every
// domain message (parse_domid: strtoul in base 10, which must use the whole
// string, at most 65535). strtoul takes leading white space and a sign
// ("-0" is 0, "-1" wraps far above 65535), and an empty string converts
// nothing and stops at its end, so it reads as 0.
func parseDomid(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, n, digits := strtol(s, 10)
	if !digits || n != len(s) || v < 0 || v > 65535 {
		return 0, syscall.EINVAL
	}
	return uint32(v), nil
}

// looseDomid reads a number as C's atoi does (garbage reads as 0), for the
// arguments C xenstored still parses that way (INTRODUCE's event channel).
func looseDomid(s string) uint32 {
	v, _, _ := strtol(s, 10)
	return uint32(v) // C: long to int to unsigned, i.e. the low 32 bits
}
