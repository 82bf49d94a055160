package schemas

// Names of the catalog and dependency-sync message schemas.
const (
	CatalogEntityUpserted = "catalog-entity-upserted"
	CatalogEntityDeleted  = "catalog-entity-deleted"
	DepsyncRun            = "depsync-run"
)
