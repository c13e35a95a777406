package config

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/pflag"
)

// LoadWithFlags builds the configuration in layers: Default(), then the
// file at path, then every flag of flags that the user set. flags holds the
// flags BindFlags registered (others, such as --config itself, are
// ignored); only the ones marked Changed override the file, so a flag left
// at its default never hides a file's setting.
//
// A missing file is an error when mustExist (the user named it); otherwise
// it counts as empty. The result is validated; a bad flag value is reported
// under the name "(flags)".
func LoadWithFlags(path string, mustExist bool, flags *pflag.FlagSet) (Config, error) {
	c := Default()
	if err := Load(path, &c); err != nil {
		if mustExist || !errors.Is(err, fs.ErrNotExist) {
			return c, err
		}
	}
	// The file's values are the defaults of a fresh set of flags bound to
	// c; setting the changed ones there writes them into c.
	onto := pflag.NewFlagSet("", pflag.ContinueOnError)
	BindFlags(onto, &c)
	var ferr error
	// Changed is read from each *pflag.Flag rather than through
	// flags.Visit: cobra parses persistent flags through the subcommand's
	// flag set, which marks the shared *pflag.Flag as Changed but not
	// flags' own record of it.
	flags.VisitAll(func(f *pflag.Flag) {
		if !f.Changed || ferr != nil {
			return
		}
		tf := onto.Lookup(f.Name)
		if tf == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			ferr = tf.Value.(pflag.SliceValue).Replace(sv.GetSlice())
		} else {
			ferr = tf.Value.Set(f.Value.String())
		}
		if ferr != nil {
			ferr = fmt.Errorf("(flags): --%s: %w", f.Name, ferr)
		}
	})
	if ferr != nil {
		return c, ferr
	}
	if err := c.Validate("(flags)"); err != nil {
		return c, err
	}
	return c, nil
}
