// Package expr parses, checks, differentiates and compiles the expressions
// of problem files: residuals and solutions written in coordinates, fields
// (network outputs) and their derivatives up to second order, constants,
// + − * / ^ and the elementary functions.
//
// An expression is parsed once (Parse) into a tree of Nodes whose leaves are
// numbers and variables (Var: a coordinate, or a field or one of its first or
// second derivatives); named constants are folded in as numbers. Diff gives
// the exact symbolic derivative along any variable, and Compile turns a tree
// into a closure that evaluates it from two input vectors (for instance a
// point's coordinates and the network's outputs there) without parsing or
// allocating. Errors name the position line:col in the expression's text.
//
// The package knows nothing of networks or problems: the caller says in an
// Env what the names mean, and where each variable is read when it compiles.
package expr
