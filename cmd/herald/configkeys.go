package main

import (
	"fmt"
	"slices"
	"strings"
)

// envPrefix starts the name of every variable that sets a configuration key:
// HERALD_<SECTION>_<KEY>, the key upper-cased with "." made "_".
const envPrefix = "HERALD_"

// envName is the variable that sets configuration key k.
func envName(k string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
}

// knownKeys lists the configuration keys, sorted.
func knownKeys() []string {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkEnvironment refuses a HERALD_* variable that sets no configuration
// key (a typo would otherwise be ignored, and the setting silently left at
// its default), naming it and the closest known variable. environ is
// os.Environ()'s form; values are never quoted (they may be secrets).
func checkEnvironment(environ []string) error {
	known := make([]string, 0, len(defaults))
	for _, k := range knownKeys() {
		known = append(known, envName(k))
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !slices.Contains(known, name) {
			unknown = append(unknown, fmt.Sprintf("%s (did you mean %s?)", name, closest(name, known)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: unknown environment variable %s: HERALD_ variables set configuration keys (see config.yaml), and no key has this name",
		strings.Join(unknown, ", "))
}

// unknownFileKeys returns the keys of a configuration file (flattened, as
// viper lists them) that are no configuration key, each with the closest
// known key.
func unknownFileKeys(fileKeys []string) []string {
	known := knownKeys()
	var out []string
	for _, k := range fileKeys {
		if _, ok := defaults[k]; !ok {
			out = append(out, fmt.Sprintf("%s (did you mean %s?)", k, closest(k, known)))
		}
	}
	slices.Sort(out)
	return out
}

// closest returns the candidate nearest to s by edit distance (the first
// of equals, candidates being sorted).
func closest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (configuration keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
