package policysvc

import (
	"bytes"

	"github.com/patchring/patchring/policy/fleetstatus"
)

// FleetStatus returns the fleet status document of the last verified state
// (signed by the console's delegated fleet-status role), or nil when there
// is none, its signed metadata has expired, or it does not parse. Gates of
// scope fleet read it, and the engine starts deferrals at its first-seen
// times. A nil View counts no reports: a missing or stale document only
// delays rings.
func (s *Service) FleetStatus() *fleetstatus.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	if st == nil || st.FleetStatus == nil || !s.cfg.Now().Before(st.FleetStatusExpires) {
		return nil
	}
	if s.statusView != nil && bytes.Equal(s.statusRaw, st.FleetStatus) {
		return s.statusView
	}
	doc, err := fleetstatus.Parse(st.FleetStatus)
	if err != nil {
		if !bytes.Equal(s.statusBad, st.FleetStatus) {
			s.cfg.Log.Warn("policy: the verified fleet status does not parse; gates of scope fleet count no reports", "err", err)
			s.statusBad = st.FleetStatus
		}
		return nil
	}
	s.statusRaw, s.statusView = st.FleetStatus, fleetstatus.NewView(doc)
	return s.statusView
}
