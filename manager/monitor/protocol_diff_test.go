package monitor

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWatcherParserMatchesGo builds the C watcher's request parser
// (cmd/lodge-helper/request.c) with a small driver and gives it and the Go
// parser the same lines, generated from the grammar's pieces and their near
// misses: on every line the watcher must refuse with Go's very reply, answer
// what Go accepts with the same arguments, or hand to Go exactly the
// operations it does not answer itself. (The e2e conformance test does the
// same through real sockets, with the corpus.)
func TestWatcherParserMatchesGo(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("SKIPPED: no C compiler (cc) to build the watcher's parser: apt-get install gcc")
	}
	driver := filepath.Join(t.TempDir(), "request-driver")
	build := exec.Command(cc, "-O1", "-Wall", "-Werror", "-I", "../../cmd/lodge-helper", "-o", driver,
		"testdata/request_driver.c", "../../cmd/lodge-helper/request.c")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the driver: %v\n%s", err, out)
	}
	lines := requestLines(20000)
	var input bytes.Buffer
	for _, line := range lines {
		fmt.Fprintln(&input, hex.EncodeToString([]byte(line)))
	}
	run := exec.Command(driver)
	run.Stdin = &input
	out, err := run.Output()
	if err != nil {
		t.Fatalf("run the driver: %v", err)
	}
	verdicts := bufio.NewScanner(bytes.NewReader(out))
	kinds := map[string]int{}
	for _, line := range lines {
		if !verdicts.Scan() {
			t.Fatal("the driver gave fewer verdicts than lines")
		}
		got, want := verdicts.Text(), goVerdict(line)
		if got != want {
			t.Errorf("line %q:\n C:  %s\n Go: %s", line, got, want)
		}
		kinds[got]++
	}
	// The lines must reach every verdict, or the comparison proves little.
	for _, want := range []string{"G", "W 0 0 0", "W 1 24 80", "W 2 24 80", "R " + string(replyJSON(replyMalformed)),
		"R " + string(replyJSON(replyVersion)), "R " + string(replyJSON(replyBadArgs(findOp(OpResize))))} {
		if kinds[want] == 0 {
			t.Errorf("no generated line gets the verdict %q", want)
		}
	}
	t.Logf("%d lines, %d distinct verdicts", len(lines), len(kinds))
}

func replyJSON(r Response) []byte {
	data, _ := json.Marshal(r)
	return data
}

// goVerdict is what the watcher must say about line, from the Go parser.
func goVerdict(line string) string {
	op, _, refusal := parseLine(line)
	if refusal == nil && (findOp(op) == nil || !findOp(op).watcher) {
		return "G" // unknown or Go's own: the watcher hands it over
	}
	req, err := decodeRequest([]byte(line))
	if err != nil {
		return "R " + string(replyJSON(errorResponse(err)))
	}
	for i, spec := range opSpecs {
		if spec.name == req.Op {
			return fmt.Sprintf("W %d %d %d", watcherIndex(i), req.Rows, req.Cols)
		}
	}
	return "?"
}

// watcherIndex is the position of opSpecs[i] among the watcher's operations
// (LODGE_OP_* in protocol.h).
func watcherIndex(i int) int {
	n := 0
	for j := 0; j < i; j++ {
		if opSpecs[j].watcher {
			n++
		}
	}
	return n
}

// requestLines makes n lines (no newline, at most maxRequest-1 bytes) from
// the grammar's pieces and near misses, with a fixed seed.
func requestLines(n int) []string {
	pieces := []string{
		"LODGE", "LODGE", "LODGE", "lodge", "LODGEX", "1", "1", "1", "2", "0", "01", "4294967295", "4294967296", "99999999999",
		"ping", "console", "resize", "stop", "freeze", "pingx", "PING", "ping2", "abcdefghijklmnopq", "abcdefghijklmnop",
		"rows=24", "cols=80", "rows=0", "cols=65535", "rows=65536", "rows=024", "rows=+1", "rows=", "=1", "rows",
		"signal=15", "signal=64", "signal=65", "timeout=4294967295", "timeout=4294967296", "force=1", "force=2",
		"x=1", "rows=1=2", `"op":"ping"`, `{"op":"ping"}`, "\t", "\x00", "\r", "\u00ef", "\x7f", "",
	}
	rng := rand.New(rand.NewSource(9))
	lines := make([]string, 0, n)
	for len(lines) < n {
		if rng.Intn(3) == 0 {
			lines = append(lines, argumentLine(rng))
			continue
		}
		var parts []string
		if rng.Intn(4) > 0 { // mostly lines that start right, to reach the later steps
			parts = append(parts, "LODGE", "1", pieces[14+rng.Intn(10)])
		}
		for k := rng.Intn(5); k > 0; k-- {
			parts = append(parts, pieces[rng.Intn(len(pieces))])
		}
		sep := " "
		if rng.Intn(20) == 0 {
			sep = "  "
		}
		line := strings.Join(parts, sep)
		if rng.Intn(20) == 0 {
			line = " " + line
		}
		if len(line) < maxRequest {
			lines = append(lines, line)
		}
	}
	return lines
}

// argumentLine makes a well-formed line with a random choice of arguments, to
// reach step 6 of the grammar.
func argumentLine(rng *rand.Rand) string {
	ops := []string{"ping", "console", "resize", "stop"}
	keys := []string{"rows", "cols", "signal", "timeout", "force"}
	values := []string{"0", "1", "2", "24", "80", "64", "65", "65535", "65536", "4294967295"}
	parts := []string{"LODGE", "1", ops[rng.Intn(len(ops))]}
	for _, i := range rng.Perm(len(keys))[:rng.Intn(4)] {
		parts = append(parts, keys[i]+"="+values[rng.Intn(len(values))])
	}
	if rng.Intn(2) == 0 { // the common case: a size
		parts = append(parts[:3], "rows=24", "cols=80")
	}
	return strings.Join(parts, " ")
}
