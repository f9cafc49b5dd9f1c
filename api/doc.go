// Package api holds the OpenAI-compatible request and response types that
// apps send to a Cocoon client, and the error JSON they get back.
package api
