package tufrepo

import (
	"fmt"
	"testing"
)

// BenchmarkPublishPolicy measures `patchring policy publish`'s signing
// step: store the policy target, re-sign targets, snapshot and timestamp,
// write them with fsync, in a repository with 200 catalog targets.
func BenchmarkPublishPolicy(b *testing.B) {
	r, _, _ := newRepo(b, Options{})
	for i := range 200 {
		if err := r.AddTarget(fmt.Sprintf("catalog/pkg%d/1.0/pkg%d.deb", i, i), []byte(fmt.Sprint(i)), []byte(`{"package":"p","version":"1.0"}`)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.Publish(); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := r.PublishPolicy(fmt.Appendf(nil, `{"policy":%d}`, i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "tufrepo_publish_policy_200_targets@ms")
}
