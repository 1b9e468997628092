package environment_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

func TestListTarballs(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"torch-100.tar":                "a",
		"torch-300.tar":                "ccc",
		"torch-200.tar":                "bb",
		"my-env.v2-50.tar":             "x",
		"Upper-10.tar":                 "ignored: upper case",
		"torch-abc.tar":                "ignored: no version",
		".torch-400.tar.tmp":           "ignored: being written",
		"torch-500.tar.gz":             "ignored: other suffix",
		"big-99999999999999999999.tar": "ignored: more than an int64",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir-1.tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	all, err := environment.ListTarballs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]environment.Tarball{
		"torch": {
			{Env: "torch", Version: 300, Path: filepath.Join(dir, "torch-300.tar"), Size: 3},
			{Env: "torch", Version: 200, Path: filepath.Join(dir, "torch-200.tar"), Size: 2},
			{Env: "torch", Version: 100, Path: filepath.Join(dir, "torch-100.tar"), Size: 1},
		},
		"my-env.v2": {{Env: "my-env.v2", Version: 50, Path: filepath.Join(dir, "my-env.v2-50.tar"), Size: 1}},
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("ListTarballs =\n%+v\nwant\n%+v", all, want)
	}
	if all, err := environment.ListTarballs(filepath.Join(dir, "missing")); err != nil || len(all) != 0 {
		t.Fatalf("missing dir: %v %v", all, err)
	}
}

func TestTarballNames(t *testing.T) {
	if got := environment.TarballName("torch", 42); got != "torch-42.tar" {
		t.Fatalf("TarballName = %q", got)
	}
	for _, tc := range []struct {
		file    string
		env     string
		version int64
		ok      bool
	}{
		{"torch-42.tar", "torch", 42, true},
		{"my-env-2-7.tar", "my-env-2", 7, true},
		{"torch-42.tar.gz", "", 0, false},
		{"Torch-42.tar", "", 0, false},
		{"torch.tar", "", 0, false},
	} {
		env, v, ok := environment.ParseTarballName(tc.file)
		if env != tc.env || v != tc.version || ok != tc.ok {
			t.Errorf("ParseTarballName(%q) = %q %d %v, want %q %d %v", tc.file, env, v, ok, tc.env, tc.version, tc.ok)
		}
		if tc.ok && environment.TarballName(env, v) != tc.file {
			t.Errorf("TarballName(ParseTarballName(%q)) = %q", tc.file, environment.TarballName(env, v))
		}
	}
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "torch", "my-env.v2", "x_1", "0base"} {
		if err := environment.CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Torch", "-x", ".x", "a b", "a/b", "a:b", environment.Native} {
		err := environment.CheckName(bad)
		if !errors.Is(err, environment.ErrInvalid) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalid", bad, err)
			continue
		}
		if r := environment.Reason(err, environment.ErrInvalid); !strings.HasPrefix(r, "environment name") {
			t.Errorf("Reason(%v) = %q", err, r)
		}
	}
	cases := map[string]string{
		"hakuriver/torch:base":     "torch",
		"hakuriver/torch:latest":   "",
		"hakuriver/torch:c-abc123": "",
		"python:3.12":              "",
		"hakuriver/Torch:base":     "",
		"hakuriver/a/b:base":       "",
		"hakuriver/my-env.v2:base": "my-env.v2",
	}
	for img, want := range cases {
		if got := environment.EnvOfImage(img); got != want {
			t.Errorf("EnvOfImage(%q) = %q, want %q", img, got, want)
		}
	}
	if got := environment.ImageName("torch"); got != "hakuriver/torch:base" || environment.EnvOfImage(got) != "torch" {
		t.Errorf("ImageName = %q", got)
	}
	if got := environment.ScopedImageName("torch", ""); got != "hakuriver/torch:base" {
		t.Errorf("ScopedImageName(unscoped) = %q", got)
	}
	if got := environment.ScopedImageName("torch", "abc123"); got != "hakuriver/torch:c-abc123" {
		t.Errorf("ScopedImageName = %q", got)
	}
}

func TestNativeAndSentinels(t *testing.T) {
	if !environment.IsNative("NULL") || environment.IsNative("") || environment.IsNative("null") || environment.IsNative("torch") {
		t.Error("IsNative: only \"NULL\" is the native marker")
	}
	if !errors.Is(environment.ErrNoShell, environment.ErrNotFound) {
		t.Error("ErrNoShell must wrap ErrNotFound")
	}
}
