package natsbus

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts a nats-server in this process, listening on listen
// ("127.0.0.1:0" picks a free loopback port), with its log going through
// log. Samplers in other processes join with the returned server's
// ClientURL; those in this process can use nats.InProcessServer.
func StartEmbedded(listen string, log hclog.Logger) (*server.Server, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen address %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "ntkbus-embedded",
		Host:       host,
		Port:       p,
		NoSigs:     true,
		MaxPayload: server.MAX_PAYLOAD_SIZE, // the default 1 MB: snapshots go in chunks
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s.SetLoggerV2(serverLogger{log.Named("nats-server")}, log.IsDebug(), log.IsTrace(), false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s did not start within 10 s", listen)
	}
	return s, nil
}

// serverLogger sends nats-server's log through hclog.
type serverLogger struct{ l hclog.Logger }

func (s serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLogger) Tracef(format string, v ...any)  { s.l.Trace(fmt.Sprintf(format, v...)) }
