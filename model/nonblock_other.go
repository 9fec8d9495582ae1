//go:build !unix

package model

const nonBlock = 0
