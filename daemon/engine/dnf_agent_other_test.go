//go:build !linux

package engine_test

func dnfAgentMain() int { return 2 }

func chrootAgentMain() int { return 2 }
