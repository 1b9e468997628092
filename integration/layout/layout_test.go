package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

// module is the module path; project packages are module or below it.
const module = "github.com/hakuriver/hakuriver-ha"

// pkg is one project package as go list reports it, with full import paths.
type pkg struct {
	Path        string   // the package
	Imports     []string // direct imports of its non-test files
	Deps        []string // every package its non-test files depend on, transitively
	TestImports []string // direct imports of its _test.go files (in-package and _test package)
}

// edges names which imports of a package a rule looks at.
type edges uint8

const (
	direct edges = 1 << iota // the package's non-test files, directly
	deps                     // the package's non-test files, transitively
	tests                    // the package's _test.go files, directly
)

// rule is one line of the table: a package from which applies is constrained
// must not have an edge to to which forbids is true.
type rule struct {
	name    string
	edges   edges
	applies func(from string) bool
	forbids func(from, to string) bool
}

// violation is one edge that breaks a rule.
type violation struct {
	from, to, rule string
	kind           edges // direct, deps or tests
}

func (v violation) String() string {
	short := func(p string) string { return strings.TrimPrefix(p, module+"/") }
	verb := map[edges]string{direct: "imports", deps: "depends on", tests: "has tests that import"}[v.kind]
	return fmt.Sprintf("%s %s %s, which breaks the rule %q", short(v.from), verb, short(v.to), v.rule)
}

// project reports whether p is a package of this module.
func project(p string) bool { return within(p, module) }

// in reports whether p is the project package dir (module-relative) or
// below it.
func in(p, dir string) bool { return within(p, module+"/"+dir) }

// inAny reports whether p is in one of the project dirs.
func inAny(p string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return in(p, d) })
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// testHelper reports whether p is a project test-helper package (named
// after what it fakes, like net/http/httptest: sshproxy/sshtest).
func testHelper(p string) bool { return project(p) && strings.HasSuffix(path.Base(p), "test") }

// testCode reports whether the non-test files of p are test support all the
// same: test-helper packages and everything under integration.
func testCode(p string) bool { return testHelper(p) || in(p, "integration") }

// always applies a rule to every package.
func always(string) bool { return true }

// table is the written table of allowed directions (STYLE.md 3.2, issue 12).
// A rule with deps also catches an import through another package; one with
// tests also holds for _test.go files.
func table() []rule {
	return []rule{{
		name:    "fsm imports no project package",
		edges:   deps,
		applies: func(from string) bool { return in(from, "fsm") },
		forbids: func(_, to string) bool { return project(to) && !in(to, "fsm") },
	}, {
		name:    "scheduler imports only fsm",
		edges:   deps,
		applies: func(from string) bool { return in(from, "scheduler") },
		forbids: func(_, to string) bool { return project(to) && !inAny(to, "fsm", "scheduler") },
	}, {
		name:    "only cluster (and its tests) imports hashicorp/raft and raft-boltdb",
		edges:   direct | tests,
		applies: func(from string) bool { return !in(from, "cluster") },
		forbids: func(_, to string) bool {
			return within(to, "github.com/hashicorp/raft") || strings.HasPrefix(to, "github.com/hashicorp/raft-boltdb")
		},
	}, {
		name:    "only gossip (and its tests) imports hashicorp/memberlist",
		edges:   direct | tests,
		applies: func(from string) bool { return !in(from, "gossip") },
		forbids: func(_, to string) bool { return within(to, "github.com/hashicorp/memberlist") },
	}, {
		name:  "only the runner's Docker executor and the environment package import the Docker SDK",
		edges: direct,
		applies: func(from string) bool {
			return !inAny(from, "runner/docker", "runner/executor/docker", "ops/environment")
		},
		forbids: func(_, to string) bool { return within(to, "github.com/docker/docker") },
	}, {
		name:    "cluster never imports a runner package (its tests may wire one in)",
		edges:   deps,
		applies: func(from string) bool { return in(from, "cluster") },
		forbids: func(_, to string) bool { return in(to, "runner") },
	}, {
		name:    "nothing imports cmd",
		edges:   direct | tests,
		applies: always,
		forbids: func(from, to string) bool { return in(to, "cmd") && from != to },
	}, {
		name:    "nothing outside integration imports integration",
		edges:   direct | tests,
		applies: func(from string) bool { return !in(from, "integration") },
		forbids: func(_, to string) bool { return in(to, "integration") },
	}, {
		name:    `production code never imports "testing"`,
		edges:   direct,
		applies: func(from string) bool { return !testCode(from) },
		forbids: func(_, to string) bool { return to == "testing" },
	}, {
		name:    "production code never imports a test-helper package",
		edges:   deps,
		applies: func(from string) bool { return !testCode(from) },
		forbids: func(_, to string) bool { return testHelper(to) },
	}, {
		name:    "cluster/httpapi reaches the replica only through its role interfaces: never package cluster, raft or gossip",
		edges:   deps,
		applies: func(from string) bool { return in(from, "cluster/httpapi") },
		forbids: func(_, to string) bool {
			return to == module+"/cluster" || in(to, "gossip") || within(to, "github.com/hashicorp/raft") || within(to, "github.com/hashicorp/memberlist")
		},
	}, {
		// It starts once per native task: every package it loads adds to
		// that start (see cmd/hakuriver-shim).
		name:    "cmd/hakuriver-shim loads only the native executor, x/sys, creack/pty and the standard library",
		edges:   deps,
		applies: func(from string) bool { return from == module+"/cmd/hakuriver-shim" },
		forbids: func(_, to string) bool {
			std := !strings.Contains(strings.SplitN(to, "/", 2)[0], ".")
			return !std && to != module+"/runner/executor" && !inAny(to, "runner/executor/native", "runner/executor/cgacct") &&
				!within(to, "golang.org/x/sys") && !within(to, "github.com/creack/pty")
		},
	}}
}

// check returns every edge of graph that breaks one of rules, in order.
func check(graph []pkg, rules []rule) []violation {
	var out []violation
	for _, p := range graph {
		for _, r := range rules {
			if !r.applies(p.Path) {
				continue
			}
			for _, e := range []struct {
				kind edges
				list []string
			}{{direct, p.Imports}, {deps, p.Deps}, {tests, p.TestImports}} {
				if r.edges&e.kind == 0 {
					continue
				}
				for _, to := range e.list {
					if r.forbids(p.Path, to) {
						out = append(out, violation{from: p.Path, to: to, rule: r.name, kind: e.kind})
					}
				}
			}
		}
	}
	return out
}

// listPackages runs go list over the whole module (with the integration
// tag, so its packages count too) and returns the project packages.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-tags", "integration", "-json=ImportPath,Imports,Deps,TestImports,XTestImports,Error,DepsErrors", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var graph []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var j struct {
			ImportPath                string
			Imports, Deps             []string
			TestImports, XTestImports []string
			Error                     *struct{ Err string }
			DepsErrors                []struct{ Err string }
		}
		if err := dec.Decode(&j); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if j.Error != nil {
			t.Fatalf("go list %s: %s", j.ImportPath, j.Error.Err)
		}
		for _, e := range j.DepsErrors {
			t.Fatalf("go list %s: dependency: %s", j.ImportPath, e.Err)
		}
		relAll := func(l ...[]string) []string {
			var r []string
			for _, p := range slices.Concat(l...) {
				if p != j.ImportPath && p != strings.TrimSuffix(j.ImportPath, "_test") {
					r = append(r, p)
				}
			}
			return r
		}
		graph = append(graph, pkg{
			Path:        j.ImportPath,
			Imports:     relAll(j.Imports),
			Deps:        relAll(j.Deps),
			TestImports: relAll(j.TestImports, j.XTestImports),
		})
	}
	return graph
}

// TestImportDirections checks the module's real import graph against table
// and names every edge that breaks one.
func TestImportDirections(t *testing.T) {
	graph := listPackages(t)
	// The graph must be the real one: its core packages are there, and
	// cluster's edge to raft is seen, so that no rule passes for want of edges.
	seen := map[string]pkg{}
	for _, p := range graph {
		seen[p.Path] = p
	}
	for _, want := range []string{"fsm", "scheduler", "cluster", "gossip", "runner", "sshproxy", "cmd/hakuriver", "cmd/hakuriver-shim", "integration", "sshproxy/sshtest"} {
		if _, ok := seen[module+"/"+want]; !ok {
			t.Fatalf("go list did not report %s among %d packages", want, len(graph))
		}
	}
	if !slices.Contains(seen[module+"/cluster"].Imports, "github.com/hashicorp/raft") {
		t.Fatalf("cluster's imports %q lack github.com/hashicorp/raft: the listing is not the real graph", seen[module+"/cluster"].Imports)
	}
	for _, v := range check(graph, table()) {
		t.Error(v)
	}
}

// TestCheck is the positive control: on a synthetic graph, each rule reports
// the one edge that breaks it and none of the allowed ones.
func TestCheck(t *testing.T) {
	rules := table()
	m := func(p string) string { return module + "/" + p }
	graph := []pkg{
		{Path: m("fsm"), Imports: []string{"fmt"}, Deps: []string{"fmt", m("ops/config")}},
		{Path: m("scheduler"), Deps: []string{m("fsm"), m("gossip")}},
		{Path: m("cluster"), Imports: []string{"github.com/hashicorp/raft", "github.com/hashicorp/raft-boltdb/v2"},
			Deps: []string{m("fsm"), m("runner/executor/docker")}, TestImports: []string{m("sshproxy/sshtest"), m("runner/executor/docker")}},
		{Path: m("gossip"), Imports: []string{"github.com/hashicorp/memberlist"}},
		{Path: m("sshproxy"), Imports: []string{"github.com/hashicorp/raft-boltdb"}, TestImports: []string{"github.com/hashicorp/memberlist"}},
		{Path: m("runner/executor/docker"), Imports: []string{"github.com/docker/docker/client"}},
		{Path: m("runner/docker"), Imports: []string{"github.com/docker/docker/client"}},
		{Path: m("ops/environment"), Imports: []string{"github.com/docker/docker/api/types"}},
		{Path: m("runner"), Imports: []string{"github.com/docker/docker/client", "testing"}, TestImports: []string{"github.com/docker/docker/client", "testing", m("cmd/hakuriver")}},
		{Path: m("ops/doctor"), Imports: []string{m("integration/harness")}, Deps: []string{m("sshproxy/sshtest")}},
		{Path: m("integration/harness"), Imports: []string{"testing"}, Deps: []string{m("sshproxy/sshtest")}},
		{Path: m("integration/cmd/bench"), Imports: []string{m("integration/harness")}},
		{Path: m("sshproxy/sshtest"), Imports: []string{"testing"}},
		{Path: m("cluster/httpapi"), Deps: []string{m("cluster/api"), m("fsm"), m("cluster")}},
		{Path: m("cmd/hakuriver-shim"), Deps: []string{"fmt", m("runner/executor"), m("runner/executor/native"), "golang.org/x/sys/unix", m("fsm")}},
	}
	got := map[string]bool{}
	for _, v := range check(graph, rules) {
		got[v.String()] = true
	}
	want := []violation{
		{m("fsm"), m("ops/config"), rules[0].name, deps},
		{m("scheduler"), m("gossip"), rules[1].name, deps},
		{m("sshproxy"), "github.com/hashicorp/raft-boltdb", rules[2].name, direct},
		{m("sshproxy"), "github.com/hashicorp/memberlist", rules[3].name, tests},
		{m("runner"), "github.com/docker/docker/client", rules[4].name, direct},
		{m("cluster"), m("runner/executor/docker"), rules[5].name, deps},
		{m("runner"), m("cmd/hakuriver"), rules[6].name, tests},
		{m("ops/doctor"), m("integration/harness"), rules[7].name, direct},
		{m("runner"), "testing", rules[8].name, direct},
		{m("ops/doctor"), m("sshproxy/sshtest"), rules[9].name, deps},
		{m("cluster/httpapi"), m("cluster"), rules[10].name, deps},
		{m("cmd/hakuriver-shim"), m("fsm"), rules[11].name, deps},
	}
	for _, w := range want {
		if !got[w.String()] {
			t.Errorf("missed: %s", w)
		}
		delete(got, w.String())
	}
	for v := range got {
		t.Errorf("reported an allowed edge: %s", v)
	}
	if len(want) != len(rules) {
		t.Errorf("%d rules but %d controls: give each rule a violation here", len(rules), len(want))
	}
}
