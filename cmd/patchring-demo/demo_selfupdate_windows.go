package main

import "errors"

// selfService is the stand-in for an init system the self-update scene
// runs each agent under: Unix only.
type selfService struct{ bin string }

func startSelfService(a *agent, cfgFile string) (*selfService, error) {
	return nil, errors.New("the self-update scene runs agents as services on Unix only")
}

func (sv *selfService) pid() int     { return 0 }
func (sv *selfService) close() error { return nil }
