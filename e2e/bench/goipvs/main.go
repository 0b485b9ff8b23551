// goipvs: the Go contender of `make bench`. It drives the kernel's IPVS table
// through github.com/cloudflare/ipvs, one library call (one netlink request)
// per operation, the way a Go controller using that library would.
//
//	goipvs converge RULES   build the table of an `ipvsadm -R` rules file
//	goipvs read             list every service and its destinations
//	goipvs change SVC DEST NEWSVC REPEAT
//	                        time single changes: add DEST to SVC, change its
//	                        weight, delete it, add NEWSVC (then delete it,
//	                        untimed), REPEAT times
//
// Each prints one line of key=value pairs, like lvs-bench.
package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

type op struct {
	svc  ipvs.Service
	dest *ipvs.Destination
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "goipvs: "+format+"\n", args...)
	os.Exit(1)
}

func service(addrPort string, proto ipvs.Protocol, sched string) ipvs.Service {
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		die("service address %q: %v", addrPort, err)
	}
	fam, mask := ipvs.INET, netmask.MaskFrom(32, 32)
	if ap.Addr().Is6() {
		fam, mask = ipvs.INET6, netmask.MaskFrom(128, 128)
	}
	return ipvs.Service{Address: ap.Addr(), Port: ap.Port(), Family: fam, Protocol: proto,
		Scheduler: sched, Netmask: mask}
}

// parseRules reads the subset of `ipvsadm -R` that `ipvsadm -Sn` writes for
// TCP/UDP services: -A with -s, -a with -r, -m/-g/-i and -w.
func parseRules(path string) []op {
	f, err := os.Open(path)
	if err != nil {
		die("%v", err)
	}
	defer f.Close()
	var ops []op
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		w := strings.Fields(sc.Text())
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		var kind, svcAddr, rs, sched string
		proto := ipvs.TCP
		weight, fwd := uint32(1), ipvs.DirectRoute
		for i := 0; i < len(w); i++ {
			next := func() string {
				i++
				if i >= len(w) {
					die("line %d: %s without a value", line, w[i-1])
				}
				return w[i]
			}
			switch w[i] {
			case "-A", "-a":
				kind = w[i]
			case "-t":
				svcAddr = next()
			case "-u":
				svcAddr, proto = next(), ipvs.UDP
			case "-r":
				rs = next()
			case "-s":
				sched = next()
			case "-w":
				n, err := strconv.ParseUint(next(), 10, 32)
				if err != nil {
					die("line %d: weight: %v", line, err)
				}
				weight = uint32(n)
			case "-m":
				fwd = ipvs.Masquerade
			case "-g":
				fwd = ipvs.DirectRoute
			case "-i":
				fwd = ipvs.Tunnel
			default:
				die("line %d: unsupported word %q", line, w[i])
			}
		}
		if sched == "" {
			sched = "wlc"
		}
		svc := service(svcAddr, proto, sched)
		switch kind {
		case "-A":
			ops = append(ops, op{svc: svc})
		case "-a":
			ap, err := netip.ParseAddrPort(rs)
			if err != nil {
				die("line %d: realserver %q: %v", line, rs, err)
			}
			fam := ipvs.INET
			if ap.Addr().Is6() {
				fam = ipvs.INET6
			}
			ops = append(ops, op{svc: svc, dest: &ipvs.Destination{Address: ap.Addr(), Port: ap.Port(),
				Family: fam, FwdMethod: fwd, Weight: weight}})
		default:
			die("line %d: neither -A nor -a", line)
		}
	}
	if err := sc.Err(); err != nil {
		die("%v", err)
	}
	return ops
}

func main() {
	if len(os.Args) < 2 {
		die("usage: goipvs converge RULES | read")
	}
	c, err := ipvs.New()
	if err != nil {
		die("opening IPVS: %v", err)
	}
	switch os.Args[1] {
	case "converge":
		if len(os.Args) != 3 {
			die("usage: goipvs converge RULES")
		}
		ops := parseRules(os.Args[2])
		t0 := time.Now()
		for i, o := range ops {
			if o.dest == nil {
				err = c.CreateService(o.svc)
			} else {
				err = c.CreateDestination(o.svc, *o.dest)
			}
			if err != nil {
				die("operation %d: %v", i, err)
			}
		}
		fmt.Printf("ops=%d apply_ms=%.3f\n", len(ops), float64(time.Since(t0).Microseconds())/1e3)
	case "read":
		t0 := time.Now()
		svcs, err := c.Services()
		if err != nil {
			die("services: %v", err)
		}
		dests := 0
		for _, s := range svcs {
			d, err := c.Destinations(s.Service)
			if err != nil {
				die("destinations of %v: %v", s.Address, err)
			}
			dests += len(d)
		}
		fmt.Printf("read_ms=%.3f services=%d dests=%d\n", float64(time.Since(t0).Microseconds())/1e3, len(svcs), dests)
	case "change":
		if len(os.Args) != 6 {
			die("usage: goipvs change SVC DEST NEWSVC REPEAT")
		}
		change(c, os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	default:
		die("unknown command %q", os.Args[1])
	}
}

func change(c ipvs.Client, svcArg, destArg, newArg, repeatArg string) {
	repeat, err := strconv.Atoi(repeatArg)
	if err != nil || repeat < 1 {
		die("repeat %q: want a positive number", repeatArg)
	}
	svc := service(svcArg, ipvs.TCP, "rr")
	newSvc := service(newArg, ipvs.TCP, "rr")
	ap, err := netip.ParseAddrPort(destArg)
	if err != nil {
		die("destination %q: %v", destArg, err)
	}
	dest := ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Family: ipvs.INET,
		FwdMethod: ipvs.Masquerade, Weight: 1}
	names := []string{"add_dest", "set_weight", "del_dest", "add_svc"}
	times := make([][]float64, len(names))
	for r := 0; r < repeat; r++ {
		changed := dest
		changed.Weight = uint32(2 + r%50)
		steps := []func() error{
			func() error { return c.CreateDestination(svc, dest) },
			func() error { return c.UpdateDestination(svc, changed) },
			func() error { return c.RemoveDestination(svc, dest) },
			func() error { return c.CreateService(newSvc) },
		}
		for k, step := range steps {
			t0 := time.Now()
			if err := step(); err != nil {
				die("%s: %v", names[k], err)
			}
			times[k] = append(times[k], float64(time.Since(t0).Nanoseconds())/1e6)
		}
		if err := c.RemoveService(newSvc); err != nil {
			die("removing %s: %v", newArg, err)
		}
	}
	line := fmt.Sprintf("repeat=%d", repeat)
	for k, n := range names {
		s := append([]float64(nil), times[k]...)
		sort.Float64s(s)
		rank := func(p float64) float64 {
			i := int(p*float64(len(s))+0.999999) - 1
			if i < 0 {
				i = 0
			}
			return s[i]
		}
		line += fmt.Sprintf(" %s_p50_ms=%.3f %s_max_ms=%.3f %s_p99_ms=%.3f", n, rank(0.5), n, s[len(s)-1], n, rank(0.99))
	}
	fmt.Println(line)
}
