// Package packaging holds the Debian packaging's files (build/deb.sh puts
// them into xsstub_VERSION_amd64.deb and xsstub_VERSION_arm64.deb; README.md) and, in its tests, checks
// the start-up wrapper against fake launchers and daemons and a package
// built from the tree's binaries.
package packaging
