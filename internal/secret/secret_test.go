package secret_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/secret"
)

func TestValueNeverPrints(t *testing.T) {
	v := secret.Value("s3cr3t-token")
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %s %q %#v %+v", v, v, v, v, v)} {
		assert.NotContains(t, s, "s3cr3t")
	}
	b, err := json.Marshal(struct{ T secret.Value }{v})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "s3cr3t")

	var buf jsonBuf
	log := zerolog.New(&buf)
	log.Info().Interface("tok", v).Stringer("tok2", v).Msg("x")
	assert.NotContains(t, string(buf), "s3cr3t")
	assert.Equal(t, "s3cr3t-token", v.Reveal())
	assert.True(t, v.Equal("s3cr3t-token"))
	assert.False(t, v.Equal("s3cr3t-tokeN"))
	assert.Equal(t, "", secret.Value("").String())
}

type jsonBuf []byte

func (b *jsonBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://backstage.example.com":         "https://backstage.example.com",
		"https://ops:pw@backstage.example.com/": "https://redacted@backstage.example.com/",
		"nats://token@nats:4222":                "nats://redacted@nats:4222",
		"not a url":                             "not a url",
		"http://ops:p%zz@host":                  "[unparseable URL]",
	}
	for in, want := range tests {
		assert.Equal(t, want, secret.RedactURL(in), in)
	}
}
