package store

import (
	"strconv"
	"syscall"
)

// Access bits of a permission entry.
const (
	PermNone  = 0
	PermRead  = 1
	PermWrite = 2
	PermBoth  = PermRead | PermWrite
	permOwner = 4 // internal: the caller owns the node (may SET_PERMS)
)

// DomidAny in a permission entry matches every domain (Xen's DOMID_ANY).
const DomidAny = 0x7ff5

// DomidSelf is Xen's DOMID_SELF, accepted by IS_DOMAIN_INTRODUCED.
const DomidSelf = 0x7ff0

// Perm is one permission entry: a domain and its access.
type Perm struct {
	ID     uint32
	Access uint8
	// Ignore marks an entry naming a domain that did not exist when the
	// entry was set (XSA-417): it is kept for GET_PERMS but grants nothing.
	Ignore bool
}

// Perms is a node's permission list; Perms[0] names the owner, whose
// access bits are the default for every domain without an entry.
type Perms []Perm

func (p Perm) String() string {
	c := byte('n')
	switch p.Access {
	case PermRead:
		c = 'r'
	case PermWrite:
		c = 'w'
	case PermBoth:
		c = 'b'
	}
	return string(c) + strconv.FormatUint(uint64(p.ID), 10)
}

// Owner is the owning domain.
func (ps Perms) Owner() uint32 { return ps[0].ID }

// Strings renders the list as GET_PERMS does.
func (ps Perms) Strings() []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

// names reports whether any entry of ps is for domid.
func (ps Perms) names(domid uint32) bool {
	for _, p := range ps {
		if p.ID == domid {
			return true
		}
	}
	return false
}

func (ps Perms) clone() Perms { return append(Perms(nil), ps...) }

// ParsePerm parses one "<r|w|b|n><domid>" entry. Like C xenstored's
// xenstore_strings_to_perms, the domid takes C integer syntax (decimal,
// 0x hex, 0 octal) and nothing may follow it.
func ParsePerm(s string) (Perm, error) {
	if len(s) < 2 {
		return Perm{}, syscall.EINVAL
	}
	var p Perm
	switch s[0] {
	case 'r':
		p.Access = PermRead
	case 'w':
		p.Access = PermWrite
	case 'b':
		p.Access = PermBoth
	case 'n':
		p.Access = PermNone
	default:
		return Perm{}, syscall.EINVAL
	}
	// The domid takes C strtol syntax (base 0) and must use the whole
	// string; what cannot name a domain is later ignored as unknown.
	v, used, any := strtol(s[1:], 0)
	if !any || used != len(s)-1 {
		return Perm{}, syscall.EINVAL
	}
	p.ID = uint32(v)
	return p, nil
}

// ParsePerms parses a SET_PERMS list.
func ParsePerms(strs []string) (Perms, error) {
	if len(strs) == 0 {
		return nil, syscall.EINVAL
	}
	ps := make(Perms, len(strs))
	for i, s := range strs {
		p, err := ParsePerm(s)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return ps, nil
}
