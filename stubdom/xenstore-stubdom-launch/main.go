// Command launch (installed as xenstore-stubdom-launch) starts the xenstore
// stub domain from dom0; it takes init-xenstore-domain's options and can
// stand in for it under xencommons (images/README.md, launcher/).
package main

import (
	"os"

	"github.com/xsstub/xenstored/launcher"
)

func main() {
	os.Exit(launcher.Main(os.Args[1:], os.Stdout, os.Stderr))
}
