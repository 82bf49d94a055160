package mapping_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/mapping"
)

// TestMarkServiceDeleted: the mark lands on the explicit mapping of the service (of a
// matching account), keeps its first time when repeated, leaves other mappings alone,
// and a new Put of the mapping clears it.
func TestMarkServiceDeleted(t *testing.T) {
	ctx := context.Background()
	_, _, js := natstest.Start(t)
	s, err := mapping.NewStore(ctx, js)
	require.NoError(t, err)
	_, err = s.Put(ctx, mapping.Mapping{ServiceID: "PGONE", EntityRef: "component:default/gone", Account: "acme"})
	require.NoError(t, err)
	_, err = s.Put(ctx, mapping.Mapping{ServiceID: "PSTAY", EntityRef: "component:default/stay", Account: "acme"})
	require.NoError(t, err)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	tests := []struct {
		name, account, service string
		want                   bool
	}{
		{name: "other account", account: "globex", service: "PGONE", want: false},
		{name: "no mapping", account: "acme", service: "PNONE", want: false},
		{name: "mapped", account: "acme", service: "PGONE", want: true},
		{name: "again, later", account: "acme", service: "PGONE", want: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := s.MarkServiceDeleted(ctx, tt.account, tt.service, at.Add(time.Duration(i)*time.Hour))
			require.NoError(t, err)
			assert.Equal(t, tt.want, ok)
		})
	}

	gone, err := s.ByService(ctx, "PGONE")
	require.NoError(t, err)
	require.NotNil(t, gone.ServiceDeletedAt)
	assert.Equal(t, at.Add(2*time.Hour), *gone.ServiceDeletedAt, "the first mark is kept")
	assert.Equal(t, "component:default/gone", gone.EntityRef, "the mapping itself is kept")
	byEntity, err := s.ByEntity(ctx, "component:default/gone")
	require.NoError(t, err)
	assert.NotNil(t, byEntity.ServiceDeletedAt)
	stay, err := s.ByService(ctx, "PSTAY")
	require.NoError(t, err)
	assert.Nil(t, stay.ServiceDeletedAt)

	_, err = s.Put(ctx, mapping.Mapping{ServiceID: "PGONE", EntityRef: "component:default/gone", Account: "acme"})
	require.NoError(t, err)
	gone, err = s.ByService(ctx, "PGONE")
	require.NoError(t, err)
	assert.Nil(t, gone.ServiceDeletedAt, "a new mapping clears the mark")
}
