package kalturatest

// IssuedSessions returns every session the emulator has issued (IssueKS,
// session.startWidgetSession, appToken.startSession), revoked ones
// included, in no particular order: a test searches what a client received
// for each of them.
func (e *Emulator) IssuedSessions() []Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Session, 0, len(e.sessions))
	for _, se := range e.sessions {
		out = append(out, se.Session)
	}
	return out
}
