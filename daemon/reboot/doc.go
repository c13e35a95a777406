// Package reboot is patchringd's reboot orchestration: it knows that a
// restart is required and since when, applies the signed policy's reboot
// rules (notice, the user's deferral choices and how many are left, refusal
// where allowed, deadline and grace, active hours, the automatic window and
// the per-site limit of headless hosts restarting at once), restarts the
// machine through a Rebooter, keeps its state in bbolt across restarts of
// the daemon and of the machine, and serves the reboot routes of the local
// API with an event stream.
//
// # The schedule
//
// A restart becomes required at Since. Its effective deadline is the later
// of Since+Deadline and Since+Grace; when both are zero there is no
// deadline and the daemon never forces a restart (only an AutoWindow can
// then trigger one).
//
// Before the deadline the daemon plans one automatic restart: at the
// earliest Since plus the longer of NotifyAhead and Grace (the grace period
// is the least time a user gets), not before the end of the user's current
// deferral, never during active hours, and only inside the AutoWindow when
// there is one. A deferral postpones that planned restart by the chosen
// time, no further than the deadline. The deadline caps all of it: at the deadline the restart
// happens even during active hours. A user who refused (where the policy
// allows it) is not restarted before the deadline.
//
// An automatic restart is always announced: a reminder NotifyAhead before
// it and a countdown event at each Countdown step (15 and 1 minutes by
// default). When the daemon learns of a restart late (it was off, or the
// policy moved the deadline into the past) the restart is moved to the
// longest of these notices from now, so nobody is restarted without
// warning.
//
// Headless hosts restart automatically only while they hold a lease of
// their group (Rules.Group, else "site:"+Config.Site) when the rules limit
// how many may restart at once; they keep the lease over the restart and
// release it once they are back (on the daemon's next start). A lease whose
// holder never comes back expires after its time to live.
package reboot
