package dnftest_test

import "os"

var osReadFile = os.ReadFile
