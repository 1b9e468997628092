package filecopy

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func tarStream(t *testing.T, hs ...tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func reg(name string, size int64) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}
}

// TestHostileArchivesAreRefused: names that climb or are absolute, links
// leading out, devices and hard links, a second top-level entry and
// streams over the caps are refused by Extract and Rewrite, and nothing
// lands outside the destination.
func TestHostileArchivesAreRefused(t *testing.T) {
	cases := []struct {
		name string
		hs   []tar.Header
		lim  Limits
	}{
		{"dotdot", []tar.Header{reg("../escaped", 1)}, Limits{}},
		{"inner dotdot", []tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("d/../../escaped", 1)}, Limits{}},
		{"absolute", []tar.Header{reg("/tmp/escaped", 1)}, Limits{}},
		{"absolute link", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}, Limits{}},
		{"climbing link", []tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}}, Limits{}},
		{"hard link", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, Limits{}},
		{"device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, Limits{}},
		{"two tops", []tar.Header{reg("a", 1), reg("b", 1)}, Limits{}},
		{"too large", []tar.Header{reg("big", 2048)}, Limits{MaxBytes: 1024}},
		{"too many", []tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("d/1", 1), reg("d/2", 1)}, Limits{MaxEntries: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := tarStream(t, tc.hs...)
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := Extract(dst, bytes.NewReader(stream), tc.lim, ""); !errors.Is(err, ErrRefused) {
				t.Errorf("Extract: %v, want ErrRefused", err)
			}
			if err := Rewrite(io.Discard, bytes.NewReader(stream), tc.lim, "", nil); !errors.Is(err, ErrRefused) {
				t.Errorf("Rewrite: %v, want ErrRefused", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 1 {
				t.Errorf("something landed next to the destination: %v", ents)
			}
		})
	}
}

// TestArchiveExtractKeepsModes: a tree with 0755 and 0600 files, a 0700
// directory and a relative link comes back identical, into an existing
// directory under its own name or renamed.
func TestArchiveExtractKeepsModes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "sub", "secret"), []byte("s"), 0o600))
	must(os.Chmod(filepath.Join(src, "sub"), 0o700))
	must(os.Symlink("sub/secret", filepath.Join(src, "link")))
	var b bytes.Buffer
	must(Archive(&b, src, ""))
	for _, rename := range []string{"", "renamed"} {
		dst := t.TempDir()
		top, err := Extract(dst, bytes.NewReader(b.Bytes()), Limits{}, rename)
		must(err)
		want := map[string]os.FileMode{"run.sh": 0o755, "sub": os.ModeDir | 0o700, "sub/secret": 0o600}
		if rename == "" && top != "tree" || rename != "" && top != rename {
			t.Errorf("top %q (rename %q)", top, rename)
		}
		for name, mode := range want {
			fi, err := os.Lstat(filepath.Join(dst, top, name))
			if err != nil || fi.Mode() != mode {
				t.Errorf("%s/%s: %v %v, want %v", top, name, fi, err, mode)
			}
		}
		if l, err := os.Readlink(filepath.Join(dst, top, "link")); err != nil || l != "sub/secret" {
			t.Errorf("link: %q %v", l, err)
		}
	}
}

// TestRewriteRenamesAndOwns: Rewrite gives the top entry its new name
// and every entry the owner.
func TestRewriteRenamesAndOwns(t *testing.T) {
	in := tarStream(t, tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000}, reg("a/f", 3))
	var out bytes.Buffer
	if err := Rewrite(&out, bytes.NewReader(in), Limits{}, "b", &Owner{UID: 42, GID: 43}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 42 || h.Gid != 43 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		names = append(names, h.Name)
	}
	if len(names) != 2 || names[0] != "b/" || names[1] != "b/f" {
		t.Errorf("names %v, want [b/ b/f]", names)
	}
}
