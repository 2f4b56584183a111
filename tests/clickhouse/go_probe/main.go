// What Grafana's ClickHouse plugin (grafana-clickhouse-datasource) does through clickhouse-go over
// HTTP, against one server, in one process.
//
// Built and run by tests/clickhouse/test_go_client.py:
//
//	go_probe ADDR USER PASSWORD DATABASE TABLE COMPRESSION
//
// COMPRESSION is none, gzip (the plugin's choice for HTTP), lz4 or zstd. Each step prints one JSON
// line {"step": name, ...}; a step that fails prints {"step": name, "error": ...} instead, so the test
// sees every step's outcome from a single launch.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The plugin's defaults: a 60 s query timeout (clickhouse-go turns a context deadline into the
// max_execution_time setting) and Grafana's SQL row limit, sent as the `limit` setting.
const (
	queryTimeout = 60 * time.Second
	rowLimit     = 1000000
)

var compressions = map[string]clickhouse.CompressionMethod{
	"none": clickhouse.CompressionNone,
	"gzip": clickhouse.CompressionGZIP,
	"lz4":  clickhouse.CompressionLZ4,
	"zstd": clickhouse.CompressionZSTD,
}

func main() {
	addr, user, password, database, table, compression := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	method, ok := compressions[compression]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown compression %q\n", compression)
		os.Exit(2)
	}
	options := &clickhouse.Options{
		Protocol:    clickhouse.HTTP,
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: database, Username: user, Password: password},
		Compression: &clickhouse.Compression{Method: method},
		DialTimeout: 10 * time.Second,
		ReadTimeout: queryTimeout,
		Settings:    clickhouse.Settings{"limit": rowLimit},
	}
	qualified := database + "." + table

	// The native API: the version handshake clickhouse-go makes over HTTP, and a ping.
	step("connect", func(ctx context.Context) (map[string]any, error) {
		conn, err := clickhouse.Open(options)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		if err := conn.Ping(ctx); err != nil {
			return nil, err
		}
		version, err := conn.ServerVersion()
		if err != nil {
			return nil, err
		}
		return map[string]any{
			"name":     version.DisplayName,
			"version":  version.Version.String(),
			"revision": version.Revision,
			"timezone": version.Timezone.String(),
		}, nil
	})

	// The plugin's path: database/sql (clickhouse.OpenDB), as sqlds drives it.
	db := clickhouse.OpenDB(options)
	defer db.Close()
	step("ping", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{}, db.PingContext(ctx)
	})
	step("version", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, "SELECT version() AS version")
	})
	// The schema browser: databases, tables (schema.go's query), columns of one table, DESCRIBE.
	step("databases", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, "SELECT name FROM system.databases WHERE name = ? ORDER BY name", database)
	})
	step("tables", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, "SELECT database, name FROM system.tables WHERE database = ? ORDER BY database, name", database)
	})
	step("columns", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, fmt.Sprintf(
			"SELECT database, table, name, type, comment FROM system.columns WHERE (database, table) IN (('%s', '%s')) "+
				"ORDER BY database, table, position", database, table))
	})
	step("describe", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, fmt.Sprintf("DESCRIBE TABLE \"%s\".\"%s\"", database, table))
	})
	// A time series: hourly counts inside a dashboard's time range, bound as server-side parameters.
	step("time_series", func(ctx context.Context) (map[string]any, error) {
		ctx = clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{
			"from": "2024-03-01 00:00:00.000",
			"to":   "2024-03-03 00:00:00.000",
		}))
		return rows(ctx, db, "SELECT toStartOfHour(updated_at) AS time, count() AS c FROM "+qualified+
			" WHERE updated_at >= {from:DateTime64(3, 'Asia/Shanghai')} AND updated_at < {to:DateTime64(3, 'Asia/Shanghai')}"+
			" GROUP BY time ORDER BY time")
	})
	// The same range bound by the client (positional parameters), with a time.Time.
	step("time_filter_bound", func(ctx context.Context) (map[string]any, error) {
		from := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
		return rows(ctx, db, "SELECT code FROM "+qualified+" WHERE updated_at >= ? AND channel = ? ORDER BY code", from, "phone")
	})
	// A table panel: every type scanned into the Go type the plugin's converters read.
	step("table", func(ctx context.Context) (map[string]any, error) {
		return typedRows(ctx, db, "SELECT * FROM "+qualified+" ORDER BY code")
	})
	step("many_rows", func(ctx context.Context) (map[string]any, error) {
		result, err := db.QueryContext(ctx, "SELECT number, toString(number) AS text FROM numbers(300000)")
		if err != nil {
			return nil, err
		}
		defer result.Close()
		var count, sum, textLength uint64
		for result.Next() {
			var number uint64
			var text string
			if err := result.Scan(&number, &text); err != nil {
				return nil, err
			}
			count, sum, textLength = count+1, sum+number, textLength+uint64(len(text))
		}
		return map[string]any{"count": count, "sum": sum, "text_length": textLength}, result.Err()
	})
	step("empty", func(ctx context.Context) (map[string]any, error) {
		return rows(ctx, db, "SELECT code FROM "+qualified+" WHERE code = 'none'")
	})
	step("write", func(ctx context.Context) (map[string]any, error) {
		_, err := db.ExecContext(ctx, "INSERT INTO "+qualified+" (code) VALUES ('C999')")
		return map[string]any{}, err
	})
}

func step(name string, run func(ctx context.Context) (map[string]any, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	fields, err := run(ctx)
	line := map[string]any{"step": name}
	if err != nil {
		line["error"] = err.Error()
		var exception *clickhouse.Exception
		if errors.As(err, &exception) {
			line["code"] = exception.Code
		}
	} else {
		for key, value := range fields {
			line[key] = value
		}
	}
	out, err := json.Marshal(line)
	if err != nil {
		out, _ = json.Marshal(map[string]any{"step": name, "error": "cannot print: " + err.Error()})
	}
	fmt.Println(string(out))
}

// rows reads a result as strings (by the driver's own formatting of each scanned value).
func rows(ctx context.Context, db *sql.DB, query string, args ...any) (map[string]any, error) {
	result, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer result.Close()
	names, err := result.Columns()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for result.Next() {
		values := make([]any, len(names))
		pointers := make([]any, len(names))
		for i := range values {
			pointers[i] = &values[i]
		}
		if err := result.Scan(pointers...); err != nil {
			return nil, err
		}
		row := map[string]any{}
		for i, name := range names {
			row[name] = describe(values[i])
		}
		out = append(out, row)
	}
	return map[string]any{"columns": names, "rows": out}, result.Err()
}

// typedRows reads each column into a new value of the driver's scan type for it, as Grafana's sqlutil
// does, and reports the type and the value.
func typedRows(ctx context.Context, db *sql.DB, query string) (map[string]any, error) {
	result, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer result.Close()
	types, err := result.ColumnTypes()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for result.Next() {
		pointers := make([]any, len(types))
		for i, column := range types {
			pointers[i] = reflect.New(column.ScanType()).Interface()
		}
		if err := result.Scan(pointers...); err != nil {
			return nil, err
		}
		row := map[string]any{}
		for i, column := range types {
			row[column.Name()] = map[string]any{
				"database_type": column.DatabaseTypeName(),
				"go_type":       column.ScanType().String(),
				"value":         describe(reflect.ValueOf(pointers[i]).Elem().Interface()),
			}
		}
		out = append(out, row)
	}
	return map[string]any{"rows": out}, result.Err()
}

// describe renders a scanned value for JSON: times with their zone, pointers followed, the rest as %v.
func describe(value any) any {
	switch v := value.(type) {
	case nil:
		return nil
	case *string:
		if v == nil {
			return nil
		}
		return *v
	case time.Time:
		return v.Format("2006-01-02T15:04:05.000Z07:00") + " " + v.Location().String()
	case string, bool, uint64, int64, float64:
		return v
	case []string:
		return v
	default:
		return fmt.Sprintf("%v", v)
	}
}
