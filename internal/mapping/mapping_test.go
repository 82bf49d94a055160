package mapping_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/mapping"
)

func TestNormalizeRef(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "Component:Foo", want: "component:default/foo"},
		{in: "component:Team-A/svc.api", want: "component:team-a/svc.api"},
		{in: " resource:default/db ", want: "resource:default/db"},
		{in: "foo", wantErr: true},
		{in: "", wantErr: true},
		{in: "component:", wantErr: true},
		{in: "component:ns/", wantErr: true},
		{in: "component:a b", wantErr: true},
		{in: "component:default/foo--", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := mapping.NormalizeRef(tt.in)
			if tt.wantErr {
				require.ErrorIs(t, err, mapping.ErrInvalidRef)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	got, err := mapping.NormalizeRefIn("Component:Bar", "", "payments")
	require.NoError(t, err)
	assert.Equal(t, "component:payments/bar", got)

	got, err = mapping.EntityRef("Component", "", "Foo")
	require.NoError(t, err)
	assert.Equal(t, "component:default/foo", got, "no metadata.namespace is the default namespace")
	got, err = mapping.EntityRef("Component", "Shop", "checkout")
	require.NoError(t, err)
	assert.Equal(t, "component:shop/checkout", got)
	_, err = mapping.EntityRef("Component", "", "a/b")
	require.ErrorIs(t, err, mapping.ErrInvalidRef, "a name cannot carry a namespace")
}

func TestStorePrecedence(t *testing.T) {
	ctx := context.Background()
	_, _, js := natstest.Start(t)
	s, err := mapping.NewStore(ctx, js)
	require.NoError(t, err)

	// Annotations only.
	_, err = s.PutEntity(ctx, mapping.Entity{Ref: "Component:A", ServiceID: "PA", Account: "acme"})
	require.NoError(t, err)
	_, err = s.PutEntity(ctx, mapping.Entity{Ref: "component:default/b", ServiceID: "PB"})
	require.NoError(t, err)
	ref, ok, err := s.ResolveService(ctx, "acme", "PA")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "component:default/a", ref)
	_, ok, err = s.ResolveService(ctx, "globex", "PA")
	require.NoError(t, err)
	assert.False(t, ok, "another account's service does not resolve")

	// An explicit mapping wins over annotations; an explicit "" unmaps.
	m, err := s.Put(ctx, mapping.Mapping{ServiceID: "PA", EntityRef: "Component:default/C", Account: "acme"})
	require.NoError(t, err)
	assert.NotEmpty(t, m.ID)
	assert.NotZero(t, m.Index)
	ref, ok, err = s.ResolveService(ctx, "acme", "PA")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "component:default/c", ref)

	m2, err := s.Put(ctx, mapping.Mapping{ServiceID: "PA", EntityRef: ""})
	require.NoError(t, err)
	assert.Equal(t, m.ID, m2.ID, "upsert by service keeps the id")
	assert.Equal(t, m.Index, m2.Index)
	_, ok, err = s.ResolveService(ctx, "acme", "PA")
	require.NoError(t, err)
	assert.False(t, ok)
	got, err := s.ByEntity(ctx, "component:default/c")
	require.NoError(t, err)
	assert.Nil(t, got, "the old entity index is gone")

	// Entity B explicitly mapped to another service: its annotation no longer binds PB.
	_, err = s.Put(ctx, mapping.Mapping{ServiceID: "PX", EntityRef: "component:default/b"})
	require.NoError(t, err)
	_, ok, err = s.ResolveService(ctx, "", "PB")
	require.NoError(t, err)
	assert.False(t, ok)

	v, err := s.View(ctx)
	require.NoError(t, err)
	b, ok := v.Binding("component:default/b")
	require.True(t, ok)
	assert.Equal(t, "PX", b.ServiceID)
	assert.True(t, b.Explicit)
	_, ok = v.Binding("component:default/a")
	assert.False(t, ok, "A's service is explicitly unmapped")

	list, err := s.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 2)

	old, err := s.DeleteEntity(ctx, "component:default/a")
	require.NoError(t, err)
	require.NotNil(t, old)
	e, err := s.Entity(ctx, "component:default/a")
	require.NoError(t, err)
	assert.Nil(t, e)

	st, err := s.Strategy(ctx)
	require.NoError(t, err)
	assert.Equal(t, mapping.StrategyDisabled, st)
	_, err = s.PutSetting(ctx, mapping.SettingDependencySyncStrategy, mapping.StrategyBoth)
	require.NoError(t, err)
	st, err = s.Strategy(ctx)
	require.NoError(t, err)
	assert.Equal(t, mapping.StrategyBoth, st)
}
