// Package migration is placeholder.
package migration
