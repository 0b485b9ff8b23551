// joinedbench: the joined-lab part of `make bench` (see ../joined.sh).
//
//	joinedbench populate FLAGS      create N VirtualServices, a pool of
//	                                RealServers and the latency probe's
//	                                objects in the API server (host side)
//	joinedbench latency FLAGS       K weight changes of the probe's
//	                                RealServer, each timed from just before
//	                                its PATCH to the probe's report that the
//	                                director's kernel has it (host side)
//	joinedbench probe FLAGS         inside the director's network namespace:
//	                                poll the probe service's destinations
//	                                over netlink and report every weight it
//	                                sees to the host over one TCP connection
//	joinedbench count               print the number of IPVS services
//	joinedbench requests FLAGS      in the client's namespace: a GET of a URL
//	                                every period on a new connection, logged
//	                                as "UPTIME ok|ERR" in start order (the
//	                                failover benchmark, ../failover.sh)
//	joinedbench neigh FLAGS         in the router's namespace: the MAC of
//	                                its neighbour entry for an address,
//	                                logged as "UPTIME MAC" on each change
//
// The API client keeps one HTTP/2 connection (the lab's admin client
// certificate), so a change costs one request on a warm connection. Every
// figure comes from the host's monotonic clock: the probe only says "weight W
// is in the kernel now", and the host stamps the line when it arrives (the
// VM's clock never enters a latency). Output: key=value lines like lvs-bench.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/ipvs"
)

const (
	group    = "lvs.lvs-operator.io"
	version  = "v1alpha1"
	ns       = "default"
	labelPfx = "bench.lvs-operator.io/g"
	// The latency probe: a VirtualService of its own with two RealServers,
	// so a weight change is exactly one destination update in the kernel.
	probeVS   = "latency-probe"
	probeRS   = "latency-probe-1"
	probeVIP  = "172.31.255.1"
	probeRSIP = "10.1.255.1"
	svcPort   = 80
	rsPort    = 8080
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "joinedbench: "+format+"\n", args...)
	os.Exit(1)
}

// --- API client ----------------------------------------------------------------------

type api struct {
	server string
	c      *http.Client
}

func newAPI(server, ca, cert, key string) *api {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca)
	if err != nil {
		die("reading the CA: %v", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		die("no certificate in %s", ca)
	}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		die("client certificate: %v", err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     10 * time.Minute,
	}
	return &api{server: strings.TrimRight(server, "/"), c: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (a *api) do(method, path, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, a.server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func coll(kind string) string {
	return fmt.Sprintf("/apis/%s/%s/namespaces/%s/%s", group, version, ns, kind)
}

func virtualService(name string, vip string, selKey, selVal string) map[string]any {
	return map[string]any{
		"apiVersion": group + "/" + version, "kind": "VirtualService",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"address": vip, "port": svcPort, "protocol": "TCP", "scheduler": "rr", "forwarding": "NAT",
			"directors":          map[string]any{"nodeSelector": map[string]any{"matchLabels": map[string]string{"lvs.lvs-operator.io/director": "true"}}},
			"realServerSelector": map[string]any{"matchLabels": map[string]string{selKey: selVal}},
		},
	}
}

func realServer(name, addr, labelKey, labelVal string, weight int) map[string]any {
	return map[string]any{
		"apiVersion": group + "/" + version, "kind": "RealServer",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]string{labelKey: labelVal}},
		"spec":     map[string]any{"address": addr, "port": rsPort, "weight": weight},
	}
}

func ipv4(base uint32, i uint32) string {
	v := base + i
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, (v>>16)&255, (v>>8)&255, v&255)
}

// --- populate ------------------------------------------------------------------------

func populate(args []string) {
	fs := flag.NewFlagSet("populate", flag.ExitOnError)
	server, ca, cert, key := apiFlags(fs)
	n := fs.Int("n", 10000, "VirtualServices")
	m := fs.Int("m", 10, "RealServers each VirtualService selects")
	poolN := fs.Int("pool", 1000, "RealServer pool (a multiple of m)")
	conc := fs.Int("conc", 16, "requests in flight")
	_ = fs.Parse(args)
	if *m <= 0 || *poolN%*m != 0 {
		die("pool %d is not a multiple of m %d", *poolN, *m)
	}
	a := newAPI(*server, *ca, *cert, *key)
	groups := *poolN / *m
	type obj struct {
		kind string
		body []byte
	}
	var objs []obj
	add := func(kind string, o map[string]any) {
		b, err := json.Marshal(o)
		if err != nil {
			die("%v", err)
		}
		objs = append(objs, obj{kind, b})
	}
	lk := labelPfx + strconv.Itoa(*m)
	// Service i is 172.16.0.1+i:80 and selects the m RealServers of group
	// i mod groups; RealServer r is 10.1.0.1+r:8080 (the shape of the
	// standalone benchmark: kernel table N services x m destinations).
	for r := 0; r < *poolN; r++ {
		add("realservers", realServer(fmt.Sprintf("rs-%d", r), ipv4(0x0a010001, uint32(r)), lk, strconv.Itoa(r / *m), 1))
	}
	add("realservers", realServer(probeRS, probeRSIP, "bench.lvs-operator.io/probe", "1", 1))
	add("realservers", realServer("latency-probe-2", ipv4(0x0a01ff01, 1), "bench.lvs-operator.io/probe", "1", 1))
	add("virtualservices", virtualService(probeVS, probeVIP, "bench.lvs-operator.io/probe", "1"))
	for i := 0; i < *n; i++ {
		add("virtualservices", virtualService(fmt.Sprintf("svc-%d", i), ipv4(0xac100001, uint32(i)), lk, strconv.Itoa(i%groups)))
	}
	t0 := time.Now()
	var next, created, existed, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(objs) {
					return
				}
				o := objs[i]
				var code int
				var body []byte
				var err error
				for try := 0; try < 5; try++ {
					code, body, err = a.do("POST", coll(o.kind), "application/json", o.body)
					if err == nil && code != 429 && code < 500 {
						break
					}
					time.Sleep(time.Duration(200*(try+1)) * time.Millisecond)
				}
				switch {
				case err == nil && code == 201:
					created.Add(1)
				case err == nil && code == 409:
					existed.Add(1)
				default:
					failed.Add(1)
					if err != nil {
						firstErr.CompareAndSwap(nil, err.Error())
					} else {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body))))
					}
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("metric=joined_populate n=%d m=%d pool=%d objects=%d created=%d existed=%d failed=%d wall_ms=%.0f per_s=%.0f\n",
		*n, *m, *poolN, len(objs), created.Load(), existed.Load(), failed.Load(), ms(el), float64(len(objs))/el.Seconds())
	if failed.Load() > 0 {
		die("%d objects not created; first error: %v", failed.Load(), firstErr.Load())
	}
}

func apiFlags(fs *flag.FlagSet) (server, ca, cert, key *string) {
	server = fs.String("server", "", "API server URL")
	ca = fs.String("ca", "", "CA certificate")
	cert = fs.String("cert", "", "client certificate")
	key = fs.String("key", "", "client key")
	return
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// --- latency (host) ------------------------------------------------------------------

// probeConn is the host's end of the probe's connection: every line the
// probe writes, stamped on arrival with the host's monotonic clock.
type stamped struct {
	line string
	at   time.Time
}

func latency(args []string) {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	server, ca, cert, key := apiFlags(fs)
	listen := fs.String("listen", "127.0.0.1:0", "where the probe connects (qemu forwards the guest's 10.0.2.2)")
	portFile := fs.String("port-file", "", "write the port listened on to this file")
	changes := fs.Int("changes", 200, "weight changes")
	gap := fs.Duration("gap", 100*time.Millisecond, "pause between changes (plus up to the same again, random)")
	n := fs.Int("n", 0, "VirtualServices present (for the result line)")
	m := fs.Int("m", 0, "RealServers per VirtualService (for the result line)")
	perChange := fs.String("log", "", "write one line per change to this file")
	timeout := fs.Duration("timeout", 60*time.Second, "limit per change")
	maxDur := fs.Duration("max-duration", 0, "stop starting changes after this long (0: no limit); the result says how many were made")
	_ = fs.Parse(args)
	a := newAPI(*server, *ca, *cert, *key)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		die("listen: %v", err)
	}
	if *portFile != "" {
		port := ln.Addr().(*net.TCPAddr).Port
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
			die("%v", err)
		}
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(120 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		die("the probe did not connect: %v", err)
	}
	_ = conn.(*net.TCPConn).SetNoDelay(true)
	lines := make(chan stamped, 1024)
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			lines <- stamped{sc.Text(), time.Now()}
		}
		close(lines)
	}()
	next := func(d time.Duration) (stamped, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(d):
			return stamped{}, false
		}
	}
	// The probe's first line is the weight it sees now.
	first, ok := next(30 * time.Second)
	if !ok || !strings.HasPrefix(first.line, "S ") {
		die("no first report from the probe (got %q)", first.line)
	}
	cur := strings.Fields(first.line)[1]
	// Round trips host -> probe -> host on the same connection: the probe's
	// report of a change takes about half of one.
	var rtts []float64
	for i := 0; i < 20; i++ {
		t := time.Now()
		if _, err := fmt.Fprintf(conn, "P\n"); err != nil {
			die("probe connection: %v", err)
		}
		for {
			l, ok := next(10 * time.Second)
			if !ok {
				die("no answer to a ping from the probe")
			}
			if l.line == "P" {
				rtts = append(rtts, ms(l.at.Sub(t)))
				break
			}
		}
	}
	var logf *os.File
	if *perChange != "" {
		if logf, err = os.Create(*perChange); err != nil {
			die("%v", err)
		}
		defer logf.Close()
	}
	// Warm the API connection.
	if code, b, err := a.do("GET", coll("realservers")+"/"+probeRS, "", nil); err != nil || code != 200 {
		die("GET %s: %v %d %s", probeRS, err, code, b)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var lat, apiMs []float64
	w0, _ := strconv.Atoi(cur)
	tStart := time.Now()
	for i := 0; i < *changes; i++ {
		if *maxDur > 0 && time.Since(tStart) > *maxDur {
			fmt.Fprintf(os.Stderr, "joinedbench: stopped after %d of %d changes (-max-duration %v)\n", i, *changes, *maxDur)
			break
		}
		w := 2 + (i % 200)
		if w == w0 {
			w++
		}
		body := []byte(fmt.Sprintf(`{"spec":{"weight":%d}}`, w))
		time.Sleep(*gap + time.Duration(rng.Int63n(int64(*gap)+1)))
		t0 := time.Now()
		code, b, err := a.do("PATCH", coll("realservers")+"/"+probeRS, "application/merge-patch+json", body)
		tAPI := time.Now()
		if err != nil || code != 200 {
			die("PATCH weight %d: %v %d %s", w, err, code, b)
		}
		want := strconv.Itoa(w)
		deadline := time.Now().Add(*timeout)
		var seen time.Time
		for seen.IsZero() {
			l, ok := next(time.Until(deadline))
			if !ok {
				die("change %d: weight %d not in the director's kernel within %v", i+1, w, *timeout)
			}
			if f := strings.Fields(l.line); len(f) >= 2 && f[0] == "S" && f[1] == want {
				seen = l.at
			}
		}
		d := ms(seen.Sub(t0))
		lat = append(lat, d)
		apiMs = append(apiMs, ms(tAPI.Sub(t0)))
		w0 = w
		if logf != nil {
			fmt.Fprintf(logf, "change=%d weight=%d latency_ms=%.1f api_ms=%.1f host_unix_ms=%d\n", i+1, w, d, ms(tAPI.Sub(t0)), t0.UnixMilli())
		}
	}
	rtt := pct(rtts, 50)
	fmt.Printf("metric=apply_latency contender=agent n=%d m=%d changes=%d planned=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f min_ms=%.1f max_ms=%.1f mean_ms=%.1f api_p50_ms=%.1f api_p99_ms=%.1f probe_rtt_p50_ms=%.2f poll_ms=10\n",
		*n, *m, len(lat), *changes, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 0), pct(lat, 100), mean(lat), pct(apiMs, 50), pct(apiMs, 99), rtt)
}

// pct: the nearest-rank percentile (0 = min, 100 = max).
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if p <= 0 {
		return s[0]
	}
	r := int(math.Ceil(p / 100 * float64(len(s))))
	if r < 1 {
		r = 1
	}
	return s[r-1]
}

func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// --- probe (guest) --------------------------------------------------------------------

// The probe polls with raw generic-netlink requests on one socket and
// buffers reused across polls: under TCG a netlink library's per-request
// allocations and checks cost a good share of a vCPU at 100 polls per
// second, CPU the agent under test needs.
const (
	nlmsgDone      = 3
	nlmsgError     = 2
	genlIDCtrl     = 0x10
	ctrlCmdGetFam  = 3
	ctrlAttrFamID  = 1
	ctrlAttrFamNm  = 2
	ipvsCmdGetDest = 8
	ipvsAttrSvc    = 1
	ipvsAttrDest   = 2
	svcAttrAF      = 1
	svcAttrProto   = 2
	svcAttrAddr    = 3
	svcAttrPort    = 4
	destAttrAddr   = 1
	destAttrPort   = 2
	destAttrWeight = 4
	nlaTypeMask    = 0x3fff
)

type nlsock struct {
	fd  int
	seq uint32
	buf []byte
}

func openNL() *nlsock {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_GENERIC)
	if err != nil {
		die("netlink socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		die("netlink bind: %v", err)
	}
	return &nlsock{fd: fd, buf: make([]byte, 1<<16)}
}

func nlattr(b []byte, typ uint16, val []byte) []byte {
	l := 4 + len(val)
	b = binary.LittleEndian.AppendUint16(b, uint16(l))
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// request builds nlmsghdr + genlmsghdr + attrs (the length is set by send).
func request(typ uint16, flags uint16, cmd uint8, attrs []byte) []byte {
	b := make([]byte, 16, 20+len(attrs))
	binary.LittleEndian.PutUint16(b[4:], typ)
	binary.LittleEndian.PutUint16(b[6:], flags)
	b = append(b, cmd, 1, 0, 0)
	b = append(b, attrs...)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// exchange sends req and calls each(payload after the genl header) for every
// answer message until the answer ends (one message, or NLMSG_DONE for a dump).
func (s *nlsock) exchange(req []byte, dump bool, each func(typ uint16, attrs []byte)) error {
	s.seq++
	binary.LittleEndian.PutUint32(req[8:], s.seq)
	if err := syscall.Sendto(s.fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	for {
		n, _, err := syscall.Recvfrom(s.fd, s.buf, 0)
		if err != nil {
			return err
		}
		b := s.buf[:n]
		for len(b) >= 16 {
			l := int(binary.LittleEndian.Uint32(b[0:]))
			typ := binary.LittleEndian.Uint16(b[4:])
			seq := binary.LittleEndian.Uint32(b[8:])
			if l < 16 || l > len(b) {
				return fmt.Errorf("bad netlink message length %d", l)
			}
			msg := b[:l]
			b = b[(l+3)&^3:]
			if seq != s.seq {
				continue
			}
			switch typ {
			case nlmsgDone:
				return nil
			case nlmsgError:
				if errno := int32(binary.LittleEndian.Uint32(msg[16:])); errno != 0 {
					return syscall.Errno(-errno)
				}
				return nil
			}
			if len(msg) >= 20 {
				each(typ, msg[20:])
			}
			if !dump {
				return nil
			}
		}
	}
}

// attrs calls f for each attribute of b.
func attrs(b []byte, f func(typ uint16, val []byte)) {
	for len(b) >= 4 {
		l := int(binary.LittleEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return
		}
		f(binary.LittleEndian.Uint16(b[2:])&nlaTypeMask, b[4:l])
		adv := (l + 3) &^ 3
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
}

func ipvsFamily(s *nlsock) uint16 {
	var id uint16
	req := request(genlIDCtrl, syscall.NLM_F_REQUEST, ctrlCmdGetFam, nlattr(nil, ctrlAttrFamNm, []byte("IPVS\x00")))
	err := s.exchange(req, false, func(_ uint16, a []byte) {
		attrs(a, func(t uint16, v []byte) {
			if t == ctrlAttrFamID && len(v) >= 2 {
				id = binary.LittleEndian.Uint16(v)
			}
		})
	})
	if err != nil || id == 0 {
		die("no IPVS generic netlink family (ip_vs loaded?): %v", err)
	}
	return id
}

func probe(args []string) {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	connect := fs.String("connect", "", "host:port of the host's latency listener")
	poll := fs.Duration("poll", 10*time.Millisecond, "poll period")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(1)
	s := openNL()
	fam := ipvsFamily(s)
	vip := netip.MustParseAddr(probeVIP).As4()
	rip := netip.MustParseAddr(probeRSIP).As4()
	var svc []byte
	svc = nlattr(svc, svcAttrAF, binary.LittleEndian.AppendUint16(nil, syscall.AF_INET))
	svc = nlattr(svc, svcAttrProto, binary.LittleEndian.AppendUint16(nil, syscall.IPPROTO_TCP))
	addr16 := make([]byte, 16)
	copy(addr16, vip[:])
	svc = nlattr(svc, svcAttrAddr, addr16)
	svc = nlattr(svc, svcAttrPort, binary.BigEndian.AppendUint16(nil, svcPort))
	req := request(fam, syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP, ipvsCmdGetDest, nlattr(nil, ipvsAttrSvc|0x8000, svc))

	var conn net.Conn
	var err error
	for end := time.Now().Add(60 * time.Second); ; {
		conn, err = net.DialTimeout("tcp", *connect, 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(end) {
			die("connecting to %s: %v", *connect, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = conn.(*net.TCPConn).SetNoDelay(true)
	var mu sync.Mutex
	send := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(conn, s); err != nil {
			os.Exit(0) // the host is done
		}
	}
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			if sc.Text() == "P" {
				send("P\n")
			}
		}
		os.Exit(0)
	}()
	last := int64(-2)
	var weight int64
	each := func(_ uint16, a []byte) {
		attrs(a, func(t uint16, v []byte) {
			if t != ipvsAttrDest {
				return
			}
			var match bool
			var port uint16
			var w int64 = -1
			attrs(v, func(t uint16, v []byte) {
				switch {
				case t == destAttrAddr && len(v) >= 4:
					match = v[0] == rip[0] && v[1] == rip[1] && v[2] == rip[2] && v[3] == rip[3]
				case t == destAttrPort && len(v) >= 2:
					port = binary.BigEndian.Uint16(v)
				case t == destAttrWeight && len(v) >= 4:
					w = int64(binary.LittleEndian.Uint32(v))
				}
			})
			if match && port == rsPort {
				weight = w
			}
		})
	}
	for {
		weight = -1
		if err := s.exchange(req, true, each); err != nil && err != syscall.ESRCH && err != syscall.ENOENT {
			die("GET_DEST: %v", err)
		}
		if weight != last {
			send("S " + strconv.FormatInt(weight, 10) + "\n")
			last = weight
		}
		time.Sleep(*poll)
	}
}

func count() {
	c, err := ipvs.New()
	if err != nil {
		die("ipvs: %v", err)
	}
	s, err := c.Services()
	if err != nil {
		die("services: %v", err)
	}
	fmt.Println(len(s))
}

// uptime: the first field of /proc/uptime, as the kernel prints it. Every
// node of the lab is a network namespace of one VM, so this is the clock the
// failover benchmark compares the kill, the router's neighbour entry and the
// requests on.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		die("reading /proc/uptime: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		die("/proc/uptime is empty")
	}
	return f[0]
}

// requests: a GET of -url every -every, each on a new TCP connection in a
// goroutine of its own, so a request whose SYN went to a MAC that no longer
// holds the VIP does not hold back the next one: the log resolves the moment
// requests succeed again to one period. Each line is "UPTIME ok" or "UPTIME
// ERR WHY" (WHY: connect, the handshake did not complete; request, it did
// but the answer did not come in time; status, an answer other than 200),
// UPTIME taken when the request started; lines are written in start order
// (the awk of e2e/scenarios/90-ha.sh reads the log as a sequence). The connect
// limit stays below the kernel's initial SYN retransmission timeout (1 s),
// so a request counts as answered only when its first SYN got through: its
// start time is then a moment the path worked.
func requests(args []string) {
	fs := flag.NewFlagSet("requests", flag.ExitOnError)
	url := fs.String("url", "", "the URL to GET")
	every := fs.Duration("every", 100*time.Millisecond, "start a request this often")
	connect := fs.Duration("connect-timeout", 900*time.Millisecond, "limit of the TCP handshake (below 1 s, the first SYN retransmission)")
	limit := fs.Duration("timeout", 3*time.Second, "limit of a whole request")
	stop := fs.String("stop-file", "", "exit once this file exists")
	out := fs.String("out", "", "the log (default: stdout)")
	_ = fs.Parse(args)
	if *url == "" {
		die("requests: -url is required")
	}
	runtime.GOMAXPROCS(1)
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			die("requests: %v", err)
		}
		w = f
	}
	client := &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: *connect}).DialContext,
		},
		Timeout: *limit,
	}
	// The dial may report from a goroutine of the transport's own.
	trace := func(done *atomic.Bool) context.Context {
		return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			ConnectDone: func(_, _ string, err error) { done.Store(err == nil) },
		})
	}
	// get: "ok", or "ERR" and why.
	get := func() string {
		var handshake atomic.Bool
		req, err := http.NewRequestWithContext(trace(&handshake), http.MethodGet, *url, nil)
		if err != nil {
			die("requests: %v", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			if handshake.Load() {
				return "ERR request"
			}
			return "ERR connect"
		}
		defer resp.Body.Close()
		if _, err = io.Copy(io.Discard, resp.Body); err != nil {
			return "ERR request"
		}
		if resp.StatusCode != http.StatusOK {
			return "ERR status"
		}
		return "ok"
	}
	// One channel per request, queued in start order; the writer waits for
	// each in turn.
	pending := make(chan chan string, 4096)
	done := make(chan struct{})
	go func() {
		for c := range pending {
			if _, err := io.WriteString(w, <-c); err != nil {
				die("requests: writing the log: %v", err)
			}
		}
		close(done)
	}()
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		if *stop != "" {
			if _, err := os.Stat(*stop); err == nil {
				break
			}
		}
		t := uptime()
		c := make(chan string, 1)
		pending <- c
		go func() { c <- t + " " + get() + "\n" }()
		<-tick.C
	}
	close(pending)
	<-done
}

// neigh: poll the namespace's IPv4 neighbour table over rtnetlink (one dump
// per period, no process per poll, so the log does not lag when the VM is
// busy) and log "UPTIME MAC" ("none" when there is no entry with an
// address) whenever the entry of -addr on -dev changes; the format of the
// neighbour log of e2e/scenarios/90-ha.sh.
func neigh(args []string) {
	fs := flag.NewFlagSet("neigh", flag.ExitOnError)
	addr := fs.String("addr", "", "the IPv4 address whose entry to follow")
	dev := fs.String("dev", "", "the interface of the entry")
	every := fs.Duration("every", 20*time.Millisecond, "poll period")
	stop := fs.String("stop-file", "", "exit once this file exists")
	out := fs.String("out", "", "the log (default: stdout)")
	_ = fs.Parse(args)
	want, err := netip.ParseAddr(*addr)
	if err != nil || !want.Is4() {
		die("neigh: -addr %q is no IPv4 address", *addr)
	}
	ifc, err := net.InterfaceByName(*dev)
	if err != nil {
		die("neigh: -dev %q: %v", *dev, err)
	}
	runtime.GOMAXPROCS(1)
	w := os.Stdout
	if *out != "" {
		if w, err = os.Create(*out); err != nil {
			die("neigh: %v", err)
		}
	}
	const ndmsgLen = 12 // struct ndmsg
	const ndaDst, ndaLladdr = 1, 2
	lookup := func() string {
		b, err := syscall.NetlinkRIB(syscall.RTM_GETNEIGH, syscall.AF_INET)
		if err != nil {
			die("neigh: RTM_GETNEIGH: %v", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil {
			die("neigh: %v", err)
		}
		for _, m := range msgs {
			if m.Header.Type != syscall.RTM_NEWNEIGH || len(m.Data) < ndmsgLen {
				continue
			}
			if int(int32(binary.LittleEndian.Uint32(m.Data[4:8]))) != ifc.Index {
				continue
			}
			var dst netip.Addr
			var mac net.HardwareAddr
			attrs(m.Data[ndmsgLen:], func(t uint16, v []byte) {
				switch {
				case t == ndaDst && len(v) == 4:
					dst = netip.AddrFrom4([4]byte(v))
				case t == ndaLladdr:
					mac = net.HardwareAddr(v)
				}
			})
			if dst == want && len(mac) > 0 {
				return mac.String()
			}
		}
		return "none"
	}
	last := ""
	for {
		if *stop != "" {
			if _, err := os.Stat(*stop); err == nil {
				return
			}
		}
		t := uptime()
		if m := lookup(); m != last {
			if _, err := io.WriteString(w, t+" "+m+"\n"); err != nil {
				die("neigh: writing the log: %v", err)
			}
			last = m
		}
		time.Sleep(*every)
	}
}

func main() {
	if len(os.Args) < 2 {
		die("usage: joinedbench populate|latency|probe|count|requests|neigh [FLAGS]")
	}
	switch os.Args[1] {
	case "populate":
		populate(os.Args[2:])
	case "latency":
		latency(os.Args[2:])
	case "probe":
		probe(os.Args[2:])
	case "count":
		count()
	case "requests":
		requests(os.Args[2:])
	case "neigh":
		neigh(os.Args[2:])
	default:
		die("unknown command %q", os.Args[1])
	}
}
