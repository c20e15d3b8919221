package network

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Small builders of nftables expressions, each a piece of a rule in nft's
// own words (comments give the nft syntax). Everything loads into register 1.

// etherType: "ether type T".
func etherType(t uint16) []expr.Any {
	return []expr.Any{
		load(expr.PayloadBaseLLHeader, 12, 2), eq(be16(t)),
	}
}

// iifname: "iifname NAME" (the bridge port a frame came in on).
func iifname(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		eq(append([]byte(name), 0)),
	}
}

// load: the n bytes of the header base at off, into register 1.
func load(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
}

// eq and neq compare register 1 with v.
func eq(v []byte) *expr.Cmp  { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v} }
func neq(v []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: v} }

// fieldMaskedNot: (field & mask) != val, e.g. "ip6 saddr != fe80::/10".
func fieldMaskedNot(base expr.PayloadBase, off uint32, mask, val []byte) []expr.Any {
	n := uint32(len(mask))
	return []expr.Any{
		load(base, off, n),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		neq(val),
	}
}

// l4: "meta l4proto P" and the transport header's byte or port at off equals v.
func l4(proto byte, off uint32, v []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		eq([]byte{proto}),
		load(expr.PayloadBaseTransportHeader, off, uint32(len(v))), eq(v),
	}
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

const (
	ethIPv4 = unix.ETH_P_IP
	ethIPv6 = unix.ETH_P_IPV6
	ethARP  = unix.ETH_P_ARP
)

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
