package main

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// A configuration error names what the user typed: the HERALD_ variable, or
// the file and line of the key, with the kind of value the key wants. These
// helpers find that out after viper failed, so the common path pays nothing.

// keyTypes maps every configuration key to the Go type Config gives it.
func keyTypes() map[string]reflect.Type {
	out := make(map[string]reflect.Type)
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("mapstructure")
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if f.Type.Kind() == reflect.Struct {
				walk(key+".", f.Type)
				continue
			}
			out[key] = f.Type
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
}

// wants says in words what values of type t look like.
func wants(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 500ms, 30s, 5m or 1h"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Uint32:
		return "a whole number, 0 or more"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list (in a variable, comma-separated)"
	}
	return "a " + t.String()
}

// scalar reports whether values of t are numbers, booleans or durations:
// never secrets, so an error may quote what was given.
func scalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Float64, reflect.Bool:
		return true
	}
	return false
}

// badValues returns one line per key whose value v cannot decode into its
// type, naming the variable that set it (when getenv has it) or the file
// and line (when path's YAML has it).
func badValues(v *viper.Viper, path string, getenv func(string) string) []string {
	types := keyTypes()
	var lines map[string]int
	var out []string
	for _, k := range knownKeys() {
		t, ok := types[k]
		if !ok {
			continue
		}
		if err := v.UnmarshalKey(k, reflect.New(t).Interface()); err == nil {
			continue
		}
		given := ""
		if val := v.Get(k); scalar(t) {
			if s := fmt.Sprint(val); len(s) <= 40 {
				given = fmt.Sprintf(", not %q", s)
			}
		}
		if env := envName(k); getenv(env) != "" {
			out = append(out, fmt.Sprintf("config: %s must be %s (it sets %s)%s", env, wants(t), k, given))
			continue
		}
		if lines == nil {
			lines = yamlKeyLines(path)
		}
		where := path
		if n := lines[k]; n > 0 {
			where = fmt.Sprintf("%s:%d", path, n)
		}
		out = append(out, fmt.Sprintf("config: %s: %s must be %s%s", where, k, wants(t), given))
	}
	return out
}

// yamlKeyLines returns the line of every key in the YAML file at path,
// flattened as viper flattens them (lower case, "." between levels); nil
// when it cannot be read.
func yamlKeyLines(path string) map[string]int {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	out := make(map[string]int)
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := prefix + strings.ToLower(n.Content[i].Value)
			out[key] = n.Content[i].Line
			walk(key+".", n.Content[i+1])
		}
	}
	walk("", doc.Content[0])
	return out
}

// yamlLinePrefix is how the YAML parser starts its messages.
var yamlLinePrefix = regexp.MustCompile(`^yaml: (line \d+: )?`)

// yamlError explains why src is not YAML, with the line where it stops
// being YAML. The parser names the line where the enclosing block starts
// (a key indented one space too far on line 3 is "line 1: did not find
// expected key"), so the line is found as the first one whose prefix of the
// file fails the same way as the whole file. ok is false when src parses.
func yamlError(src []byte) (line int, msg string, ok bool) {
	var m map[string]any
	err := yaml.Unmarshal(src, &m)
	if err == nil {
		return 0, "", false
	}
	msg = yamlLinePrefix.ReplaceAllString(err.Error(), "")
	var prefix []byte
	for i, l := range bytes.SplitAfter(src, []byte("\n")) {
		prefix = append(prefix, l...)
		var pm map[string]any
		if e := yaml.Unmarshal(prefix, &pm); e != nil && yamlLinePrefix.ReplaceAllString(e.Error(), "") == msg {
			return i + 1, msg, true
		}
	}
	// Not found by prefixes: the parser's own line, if it gave one.
	if sub := regexp.MustCompile(`^yaml: line (\d+): `).FindStringSubmatch(err.Error()); sub != nil {
		_, _ = fmt.Sscan(sub[1], &line)
	}
	return line, msg, true
}

// fileError describes a configuration file viper could not read: a YAML
// error with its file and line, else err as viper gave it.
func fileError(path string, err error) error {
	if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		if src, rerr := os.ReadFile(path); rerr == nil {
			if line, msg, ok := yamlError(src); ok {
				where := path
				if line > 0 {
					where = fmt.Sprintf("%s:%d", path, line)
				}
				return fmt.Errorf("config: %s: not valid YAML: %s", where, msg)
			}
		}
	}
	return fmt.Errorf("config: read %s: %w", path, err)
}

// nameSources splits err, validate's joined errors, and rewrites each
// "config: <key>: why" to name where the key was set: "config:
// HERALD_<KEY> (<key>): why" when a variable set it, "config:
// <file>:<line>: <key>: why" when the file did. Others are kept as they are.
func nameSources(err error, path string, getenv func(string) string) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	// errors.Join's result; validate returns nothing else that unwraps so.
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var lines map[string]int
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		rest, ok := strings.CutPrefix(e.Error(), "config: ")
		key, why, ok2 := strings.Cut(rest, ": ")
		if _, known := defaults[key]; !ok || !ok2 || !known {
			out = append(out, e)
			continue
		}
		if env := envName(key); getenv(env) != "" {
			out = append(out, fmt.Errorf("config: %s (%s): %s", env, key, why))
			continue
		}
		if lines == nil && path != "" {
			lines = yamlKeyLines(path)
		}
		if n := lines[key]; n > 0 {
			out = append(out, fmt.Errorf("config: %s:%d: %s: %s", path, n, key, why))
			continue
		}
		out = append(out, e)
	}
	return out
}
