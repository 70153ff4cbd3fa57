package store

import (
	"strconv"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// benchConn handles requests and throws the output away.
func benchReq(c *Conn, typ wire.Type, tx uint32, payload []byte) {
	c.Handle(wire.Msg{Type: typ, ReqID: 1, TxID: tx, Payload: payload})
	for {
		if _, ok := c.NextOutput(); !ok {
			return
		}
	}
}

func benchEngine(b *testing.B, nodes int) (*Engine, *Conn) {
	e := New(Config{Logger: quietLogger()})
	c := e.NewConn(0, true, nil)
	for i := 0; i < nodes; i++ {
		benchReq(c, wire.Write, 0, []byte("/local/domain/"+strconv.Itoa(i%100)+"/device/vif/"+strconv.Itoa(i)+"\x00value"))
	}
	return e, c
}

func BenchmarkRead(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(strconv.Itoa(n)+"nodes", func(b *testing.B) {
			_, c := benchEngine(b, n)
			p := []byte("/local/domain/7/device/vif/7\x00")
			b.ReportAllocs()
			for b.Loop() {
				benchReq(c, wire.Read, 0, p)
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	_, c := benchEngine(b, 1000)
	p := []byte("/local/domain/7/device/vif/7\x00new-value-16byte")
	b.ReportAllocs()
	for b.Loop() {
		benchReq(c, wire.Write, 0, p)
	}
}

// BenchmarkWriteRandom rewrites random existing nodes of a large store:
// every write leaves garbage in some chunk of the node table, so this is
// the cost of compaction and of cache misses at scale.
func BenchmarkWriteRandom(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(strconv.Itoa(n)+"nodes", func(b *testing.B) {
			_, c := benchEngine(b, n)
			reqs := make([][]byte, 4096)
			for i := range reqs {
				k := (i * 7919) % n
				reqs[i] = []byte("/local/domain/" + strconv.Itoa(k%100) + "/device/vif/" + strconv.Itoa(k) + "\x00new-value-16byte")
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				benchReq(c, wire.Write, 0, reqs[i%len(reqs)])
				i++
			}
		})
	}
}

func BenchmarkDirectory(b *testing.B) {
	_, c := benchEngine(b, 1000)
	p := []byte("/local/domain/7/device/vif\x00")
	b.ReportAllocs()
	for b.Loop() {
		benchReq(c, wire.Directory, 0, p)
	}
}

func BenchmarkTransactionRMW(b *testing.B) {
	_, c := benchEngine(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		c.Handle(wire.Msg{Type: wire.TransactionStart, ReqID: 1, Payload: []byte{0}})
		out, _ := c.NextOutput()
		m, _ := wire.Decode(out)
		id, _ := strconv.Atoi(string(m.Payload[:len(m.Payload)-1]))
		tx := uint32(id)
		benchReq(c, wire.Read, tx, []byte("/local/domain/7/device/vif/7\x00"))
		benchReq(c, wire.Write, tx, []byte("/local/domain/7/device/vif/7\x00v2"))
		benchReq(c, wire.TransactionEnd, tx, []byte("T\x00"))
	}
}

func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(strconv.Itoa(n)+"watchers", func(b *testing.B) {
			e, c := benchEngine(b, 1000)
			var watchers []*Conn
			for i := 0; i < n; i++ {
				w := e.NewConn(0, true, nil)
				benchReq(w, wire.Watch, 0, []byte("/local/domain/7\x00tok\x00"))
				watchers = append(watchers, w)
			}
			p := []byte("/local/domain/7/device/vif/7\x00x")
			b.ReportAllocs()
			for b.Loop() {
				benchReq(c, wire.Write, 0, p)
				for _, w := range watchers {
					w.NextOutput()
				}
			}
		})
	}
}
