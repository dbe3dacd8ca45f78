"""Per-client product collections: our own data (a name and an ordered list of product ids, each with a note),
stored in our database, written through adrf async viewsets that check every product id against the catalog, and
read back composed with the catalog, stock and ratings of its products in one fan-out (the database read is a part
of the aggregate like any upstream call). See the README's "Collections"."""
