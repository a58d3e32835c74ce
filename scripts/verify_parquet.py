#!/usr/bin/env python3
"""Checks a quiver Parquet sink's output with an independent reader (pyarrow).

Every visible file (no path component starting with '.' or '_') must be a
complete Parquet file; all files must share one schema without the partition
columns; the Hive-partitioned dataset read the way any pyarrow user reads it
must hold exactly the expected rows: a row count, column sums (no loss), and
unique keys (no duplicates after a crash and a rerun).

usage: verify_parquet.py DIR [--rows N] [--sum COL=VALUE ...] [--unique COL,COL]
"""

import argparse
import os
import sys

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def visible_files(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        files += [os.path.join(dirpath, f) for f in filenames if not f.startswith((".", "_"))]
    return sorted(files)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--sum", action="append", default=[], metavar="COL=VALUE")
    parser.add_argument("--unique", metavar="COL,COL")
    args = parser.parse_args()

    files = visible_files(args.dir)
    if not files:
        sys.exit(f"no visible files under {args.dir}")
    schemas = set()
    file_rows = 0
    for path in files:
        if not path.endswith(".parquet"):
            sys.exit(f"unexpected visible file {path}")
        try:
            table = pq.read_table(path)
        except Exception as e:  # a partial or corrupt file
            sys.exit(f"{path} is not a readable Parquet file: {e}")
        schemas.add(table.schema.remove_metadata().to_string())
        file_rows += table.num_rows
        partition_cols = [p.split("=", 1)[0] for p in os.path.relpath(path, args.dir).split(os.sep)[:-1]]
        for col in partition_cols:
            if col in table.column_names:
                sys.exit(f"{path} holds partition column {col}; Hive readers expect it only in the path")
    if len(schemas) != 1:
        sys.exit(f"files disagree on the schema: {schemas}")

    table = ds.dataset(args.dir, format="parquet", partitioning="hive").to_table()
    if table.num_rows != file_rows:
        sys.exit(f"the dataset reader saw {table.num_rows} rows, the files hold {file_rows}")
    if args.rows is not None and table.num_rows != args.rows:
        sys.exit(f"expected {args.rows} rows, read {table.num_rows}")
    for spec in args.sum:
        col, value = spec.split("=", 1)
        total = pc.sum(table[col]).as_py()
        if total != int(value):
            sys.exit(f"sum({col}) = {total}, expected {value}")
    if args.unique:
        keys = args.unique.split(",")
        groups = table.group_by(keys).aggregate([([], "count_all")])
        dupes = groups.filter(pc.greater(groups["count_all"], 1))
        if dupes.num_rows:
            sys.exit(f"{dupes.num_rows} duplicated keys ({args.unique}), e.g. {dupes.slice(0, 3).to_pylist()}")
    print(f"ok: {len(files)} files, {table.num_rows} rows, columns {table.column_names}")


if __name__ == "__main__":
    main()
