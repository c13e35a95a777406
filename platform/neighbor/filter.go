package neighbor

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// packetOutgoing is PACKET_OUTGOING (linux/if_packet.h): a frame this
// host sent, looped back to packet sockets.
const packetOutgoing = 4

// frameFilter is the classic BPF program Listen's socket runs on each
// received Ethernet frame: it passes ARP, frames sent to a group
// (broadcast or multicast) address, which is how DHCP, mDNS and NDP
// solicitations travel, and ICMPv6 neighbour discovery (types 133-136)
// sent to this node; everything else, the node's own unicast traffic, is
// dropped in the kernel.
func frameFilter() []bpf.Instruction {
	const accept, drop = 11, 12 // indexes of the two returns below
	skip := func(from, to int) uint8 { return uint8(to - from - 1) }
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeARP, SkipTrue: skip(1, accept)},
		/* 2 */ bpf.LoadAbsolute{Off: 0, Size: 1}, // the destination's first byte
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: skip(3, accept)}, // group address
		/* 4 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv6, SkipFalse: skip(5, drop)},
		/* 6 */ bpf.LoadAbsolute{Off: 14 + 6, Size: 1}, // IPv6 next header
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 58, SkipFalse: skip(7, drop)}, // ICMPv6
		/* 8 */ bpf.LoadAbsolute{Off: 14 + 40, Size: 1}, // ICMPv6 type
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 133, SkipTrue: skip(9, drop)},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: 136, SkipTrue: skip(10, drop)},
		/* 11 */ bpf.RetConstant{Val: 1 << 16}, // the whole frame
		/* 12 */ bpf.RetConstant{Val: 0},
	}
}

// listenFilter is frameFilter behind a check of the frame's packet type
// (an extension only the kernel runs): frames this host sent are dropped.
func listenFilter() ([]bpf.RawInstruction, error) {
	prog := append([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}, frameFilter()...)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble the socket filter: %w", err)
	}
	return raw, nil
}
