package main

import "testing"

func TestReverse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Hello, World", "dlroW ,olleH"},
		{"añb", "bña"},
	} {
		if got := reverse(tc.in); got != tc.want {
			t.Errorf("reverse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
