package content

func isQuota(error) bool { return false }
