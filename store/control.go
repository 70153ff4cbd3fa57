package store

import (
	"bytes"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// controlCmd is one CONTROL command: args are the NUL-separated
// parameters; raw is the payload after the command's name, for binary
// parameters (live-update -d).
type controlCmd struct {
	name, pars string
	run        func(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error)
}

// controlCmds lists the commands in the order help shows them.
var controlCmds []controlCmd

func init() {
	controlCmds = []controlCmd{
		{"check", "", ctlCheck},
		{"log", "[on|off|+<switch>|-<switch>]", ctlLog},
		{"live-update", "[-c <cmdline>] [-F] [-t <timeout>] <file>", ctlLiveUpdate},
		{"memreport", "", ctlMemreport},
		{"print", "<string>", ctlPrint},
		{"quota", "[set <name> <val>|<domid>]", ctlQuota},
		{"quota-soft", "[set <name> <val>]", ctlQuota},
		{"connections", "", ctlConnections},
		{"queues", "<domid>", ctlQueues},
		{"help", "", ctlHelp},
	}
}

// control handles CONTROL <command>|[<parameters>|]*.
func (e *Engine) control(c *Conn, m *wire.Msg) ([]byte, error) {
	p := m.Payload
	name, raw, found := bytes.Cut(p, []byte{0})
	if !found || len(name) == 0 {
		return nil, syscall.EINVAL
	}
	for _, cmd := range controlCmds {
		if cmd.name == string(name) {
			return cmd.run(e, c, m, splitArgs(raw), raw)
		}
	}
	return nil, syscall.EINVAL
}

func text(s string) ([]byte, error) { return append([]byte(s), 0), nil }

func ctlHelp(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) != 0 {
		return nil, syscall.EINVAL
	}
	var b strings.Builder
	for _, h := range controlCmds {
		fmt.Fprintf(&b, "%-15s %s\n", h.name, h.pars)
	}
	return text(b.String())
}

func ctlCheck(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) != 0 {
		return nil, syscall.EINVAL
	}
	if errs := e.checkLocked(); len(errs) > 0 {
		for _, s := range errs {
			e.log.Error("store check failed", "problem", s)
		}
		return nil, syscall.EIO
	}
	return ok()
}

func ctlLog(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	switch {
	case len(args) == 0:
		on := "off"
		if e.traceOn {
			on = "on"
		}
		return text(fmt.Sprintf("Log switch settings:\n%-8s: %s\n", "io", on))
	case len(args) != 1:
		return nil, syscall.EINVAL
	case args[0] == "on" || args[0] == "+io":
		e.commitPoint("trace switch")
		e.traceOn = true
	case args[0] == "off" || args[0] == "-io":
		e.commitPoint("trace switch")
		e.traceOn = false
	default:
		return nil, syscall.EINVAL
	}
	return ok()
}

func ctlPrint(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) != 1 {
		return nil, syscall.EINVAL
	}
	e.log.Info("control print", "text", args[0])
	if e.trace != nil {
		e.trace(args[0])
	}
	return ok()
}

func ctlMemreport(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) > 1 {
		return nil, syscall.EINVAL
	}
	return text(e.memReport())
}

// ctlQuota is quota and quota-soft: the table, "set NAME VALUE" (global
// and every domain's), or one domain's usage (quota DOMID).
func ctlQuota(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	soft := strings.HasSuffix(string(m.Payload[:bytes.IndexByte(m.Payload, 0)]), "-soft")
	switch {
	case len(args) == 0:
		vals := &e.quotas.Hard
		if soft {
			vals = &e.quotas.Soft
		}
		out := quotaTable(vals, soft)
		if !soft {
			out += e.ceilingLine()
		}
		return text(out)
	case args[0] == "set":
		return e.setGlobalQuota(args[1:], soft)
	case !soft && len(args) == 1:
		domid, err := parseDomid(args[0])
		if err != nil {
			return nil, err
		}
		d := e.domains[domid]
		if d == nil || !e.knownDomain(d) {
			return nil, syscall.ENOENT
		}
		return text(fmt.Sprintf("Domain %d:\n%-17s: %8d\n%-17s: %8d\n%-17s: %8d\n%-17s: %8d\n",
			domid, "nodes", d.nodes, "watches", d.watches, "transactions", d.txns, "memory", d.memory))
	}
	return nil, syscall.EINVAL
}

// knownDomain is whether CONTROL quota DOMID answers for d, as C answers
// for the domains it keeps: introduced, existing, or accounted for. A
// record left only by a quota read or set on an unknown domain is not.
func (e *Engine) knownDomain(d *Domain) bool {
	switch {
	case d.Introduced, d.nodes > 0, d.watches > 0, d.txns > 0:
		return true
	case d.ID == e.cfg.PrivDomid || d.ID == e.cfg.StoreDomid:
		return true
	}
	return e.cfg.Platform != nil && e.cfg.Platform.DomainExists(d.ID)
}

func (e *Engine) setGlobalQuota(args []string, soft bool) ([]byte, error) {
	if len(args) != 2 {
		return nil, syscall.EINVAL
	}
	v, err := ParseQuota(args[1])
	if err != nil {
		return nil, syscall.EINVAL
	}
	e.commitPoint("quota change")
	if err := e.quotas.Set(args[0], v, soft); err != nil {
		return nil, syscall.EINVAL
	}
	for _, d := range e.domains { // applies to running domains too
		_ = d.quotas.Set(args[0], v, soft)
	}
	e.log.Info("quota changed", "quota", args[0], "soft", soft, "value", v)
	return ok()
}

func ctlConnections(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) != 0 {
		return nil, syscall.EINVAL
	}
	// One line per connection, as many as fit a reply.
	var b strings.Builder
	conns := e.sortedConns()
	for i, x := range conns {
		line := e.connSummary(x)
		if b.Len()+len(line) > wire.PayloadMax-64 {
			fmt.Fprintf(&b, "... %d more (queues <domid> shows one domain)\n", len(conns)-i)
			break
		}
		b.WriteString(line)
	}
	return text(b.String())
}

func ctlQueues(e *Engine, c *Conn, m *wire.Msg, args []string, raw []byte) ([]byte, error) {
	if len(args) != 1 {
		return nil, syscall.EINVAL
	}
	domid, err := parseDomid(args[0])
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, x := range e.sortedConns() {
		if x.domid == domid {
			b.WriteString(e.connSummary(x))
			b.WriteString(e.watchSummary(x))
		}
	}
	if b.Len() == 0 {
		return nil, syscall.ENOENT
	}
	return text(b.String())
}

// ceilingLine reports the store-wide memory ceiling (ceiling.go) after
// the quota table: the ceiling (0: none), the current estimate and the
// unprivileged changes refused at it so far.
func (e *Engine) ceilingLine() string {
	return fmt.Sprintf("%-17s: %8d Store-wide memory ceiling (estimate %d, refused %d)\n",
		"memory-ceiling", e.cfg.MemoryCeiling, e.memEstimate(), e.ceilRefused)
}

func (e *Engine) connSummary(c *Conn) string {
	events := len(c.out) - c.replies
	return fmt.Sprintf("conn %d domid %d priv %t requests %d replies-queued %d events-queued %d parked %d watches %d transactions %d dropped-events %d input %s\n",
		c.id, c.domid, c.priv, c.requests, c.replies, events, c.parked, len(c.watches), len(c.txns), c.dropped,
		map[bool]string{true: "open", false: "stopped"}[c.wantsInputLocked()])
}

func (e *Engine) memReport() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	records, held := e.nodes.stats()
	watches := 0
	for _, l := range e.watchIdx {
		watches += len(l)
	}
	return fmt.Sprintf("nodes: %d (%d bytes of records, %d bytes held with the index)\nconnections: %d\nwatches: %d\ndomains: %d\ngo heap in use: %d bytes\ngo sys: %d bytes\n",
		e.nodes.len(), records, held, len(e.conns), watches, len(e.domains), ms.HeapInuse, ms.Sys) + e.ceilingLine() +
		fmt.Sprintf("internal errors contained: %d (each answered EIO, its connection closed, the store unchanged)\n", e.contained) +
		e.systemReport()
}

func (e *Engine) systemReport() string {
	if e.cfg.SystemReport == nil {
		return ""
	}
	return e.cfg.SystemReport()
}

// checkLocked verifies the tree and the accounting; it returns the
// problems found, sorted.
func (e *Engine) checkLocked() []string {
	var errs []string
	seen := e.checkTree(&errs)
	owned := e.checkPermIndex(seen, &errs)
	e.checkOwners(owned, &errs)
	e.checkCeilingEstimate(&errs)
	e.checkQueues(&errs)
	sort.Strings(errs)
	return errs
}

// checkTree walks the tree from the root (iteratively, like every tree
// walk here) and returns the paths it reached.
func (e *Engine) checkTree(errs *[]string) map[string]bool {
	seen := map[string]bool{}
	stack := []string{"/"}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := e.nodes.get(p)
		if n == nil {
			*errs = append(*errs, "missing node "+p)
			continue
		}
		if seen[p] {
			*errs = append(*errs, "node reached twice "+p)
			continue
		}
		seen[p] = true
		if len(n.perms) == 0 {
			*errs = append(*errs, "node without permissions "+p)
		}
		if len(n.children) > 0 && n.children[len(n.children)-1] != 0 {
			*errs = append(*errs, "unterminated child list of "+p)
			continue
		}
		names := map[string]bool{}
		eachChild(n.children, func(ch string) {
			if names[ch] || ch == "" {
				*errs = append(*errs, "bad or duplicate child "+ch+" of "+p)
			}
			names[ch] = true
			stack = append(stack, childPath(p, ch))
		})
	}
	return seen
}

// checkPermIndex checks every node against the index of the domains its
// permissions name, and that the tree reaches it; it returns the nodes
// each domain owns.
func (e *Engine) checkPermIndex(seen map[string]bool, errs *[]string) map[uint32]int {
	owned := map[uint32]int{}
	indexed := 0
	for _, set := range e.mentions {
		indexed += len(set)
	}
	want := 0
	e.nodes.each(func(p string, n *node) bool {
		seenIDs := map[uint32]bool{}
		home, inHome := homeOf(p)
		for i, pm := range n.perms {
			if pm.ID != e.cfg.PrivDomid && !seenIDs[pm.ID] && !(inHome && pm.ID == home) && !(i > 0 && pm.Ignore) {
				seenIDs[pm.ID] = true
				want++
				if _, ok := e.mentions[pm.ID][p]; !ok {
					*errs = append(*errs, fmt.Sprintf("node %s names domain %d but is not indexed", p, pm.ID))
				}
			}
		}
		owned[n.perms.Owner()]++
		if !seen[p] && !isSpecial(p) {
			*errs = append(*errs, "unreachable node "+p)
		}
		return true
	})
	if indexed != want {
		*errs = append(*errs, fmt.Sprintf("permission index has %d entries, want %d", indexed, want))
	}
	return owned
}

// checkOwners compares the nodes each domain owns with its accounting.
func (e *Engine) checkOwners(owned map[uint32]int, errs *[]string) {
	for id, d := range e.domains {
		if d.nodes != owned[id] {
			*errs = append(*errs, fmt.Sprintf("domain %d owns %d nodes, accounted %d", id, owned[id], d.nodes))
		}
	}
	for id, cnt := range owned {
		if e.domains[id] == nil {
			*errs = append(*errs, fmt.Sprintf("domain %d owns %d nodes but has no record", id, cnt))
		}
	}
}

// checkCeilingEstimate recounts what the memory ceiling's estimate and the
// transaction accounting add up.
func (e *Engine) checkCeilingEstimate(errs *[]string) {
	watches := 0
	for _, l := range e.watchIdx {
		watches += len(l)
	}
	openTxns := map[*Domain]int{}
	var txBytes, outBytes int64
	for c := range e.conns {
		for _, tx := range c.txns {
			openTxns[tx.dom]++
			txBytes += tx.bytes
		}
		for _, it := range c.out {
			outBytes += int64(len(it.msg))
		}
	}
	var memTotal int64
	e.nodes.each(func(p string, n *node) bool {
		memTotal += int64(nodeBytes(p, n))
		return true
	})
	if memTotal != e.memTotal || txBytes != e.txBytes || outBytes != e.outBytes || watches != e.watchCount {
		*errs = append(*errs, fmt.Sprintf("ceiling estimate: node memory %d/%d, transactions %d/%d, output %d/%d, watches %d/%d (counted/accounted)",
			memTotal, e.memTotal, txBytes, e.txBytes, outBytes, e.outBytes, watches, e.watchCount))
	}
	for id, d := range e.domains {
		if d.txns != openTxns[d] {
			*errs = append(*errs, fmt.Sprintf("domain %d has %d open transactions, accounted %d", id, openTxns[d], d.txns))
		}
	}
}

// checkQueues recounts each connection's queued replies and each watch's
// queued events.
func (e *Engine) checkQueues(errs *[]string) {
	for _, c := range e.sortedConns() {
		replies, perWatch := 0, map[*watch]int{}
		for _, it := range c.out {
			if it.watch == nil {
				replies++
			} else {
				perWatch[it.watch]++
			}
		}
		if replies != c.replies {
			*errs = append(*errs, fmt.Sprintf("conn %d: %d replies queued, counted %d", c.id, replies, c.replies))
		}
		for _, w := range c.watches {
			if perWatch[w] != w.queued {
				*errs = append(*errs, fmt.Sprintf("conn %d watch %s: %d events queued, counted %d", c.id, w.path, perWatch[w], w.queued))
			}
		}
	}
}

// Check runs the consistency check (for tests and fuzzing).
func (e *Engine) Check() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if errs := e.checkLocked(); len(errs) > 0 {
		return fmt.Errorf("store inconsistent: %s", strings.Join(errs, "; "))
	}
	return nil
}
