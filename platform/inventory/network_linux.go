package inventory

// defaultRoutes reads the IPv4 and IPv6 default routes from /proc/net.
func (s *scan) defaultRoutes(list *[]Unavailable) []Route {
	var out []Route
	for _, f := range []struct {
		file  string
		parse func([]byte) ([]Route, error)
	}{
		{"/proc/net/route", parseRouteV4},
		{"/proc/net/ipv6_route", parseRouteV6},
	} {
		data, u := s.read(f.file)
		if u != nil {
			unavail(list, u)
			continue
		}
		routes, err := f.parse(data)
		if err != nil {
			*list = append(*list, Unavailable{Source: f.file, Reason: err.Error()})
			continue
		}
		out = append(out, routes...)
	}
	return out
}
