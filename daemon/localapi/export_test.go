package localapi

// Handle and HandleStream let the server's tests register routes of their
// own; the agent's routes come from the route table only.
var (
	Handle       = (*Server).handle
	HandleStream = (*Server).handleStream
)
