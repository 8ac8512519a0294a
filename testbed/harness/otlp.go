package harness

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protowire"
)

// Raw OTLP requests for probes the SDKs cannot make (nesting a million levels
// deep, times beyond 2262): written by hand in O(size), since pdata's encoder
// recurses once per level.

// OTLPRecord is one log record of a raw OTLP logs request: a record write
// (batch, record, target) at TimeUnixNano whose attribute "deep" nests
// Levels arrays (none when 0).
type OTLPRecord struct {
	EventID      string
	TimeUnixNano uint64
	Levels       int
}

// OTLPLogsProto returns an ExportLogsServiceRequest in protobuf.
func OTLPLogsProto(records ...OTLPRecord) []byte {
	var scope []byte
	for _, r := range records {
		var lr []byte
		lr = protowire.AppendTag(lr, 1, protowire.Fixed64Type) // time_unix_nano
		lr = protowire.AppendFixed64(lr, r.TimeUnixNano)
		lr = protowire.AppendTag(lr, 12, protowire.BytesType) // event_name
		lr = protowire.AppendString(lr, "batchaudit.record.write")
		for _, kv := range [][2]string{{"log.record.uid", r.EventID}, {"batchaudit.batch.id", "probe"},
			{"batchaudit.record.id", "R-" + r.EventID}, {"batchaudit.target.name", "probe.table"}} {
			lr = appendKV(lr, kv[0], strValue(kv[1]))
		}
		if r.Levels > 0 {
			lr = appendKV(lr, "deep", nestedArrays(r.Levels))
		}
		scope = appendMessage(scope, 2, lr) // ScopeLogs.log_records
	}
	resource := appendMessage(nil, 2, scope) // ResourceLogs.scope_logs
	return appendMessage(nil, 1, resource)   // ExportLogsServiceRequest.resource_logs
}

// OTLPLogsJSON returns the same request in OTLP/JSON.
func OTLPLogsJSON(records ...OTLPRecord) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[`)
	for i, r := range records {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"timeUnixNano":"%d","eventName":"batchaudit.record.write","attributes":[`, r.TimeUnixNano)
		for _, kv := range [][2]string{{"log.record.uid", r.EventID}, {"batchaudit.batch.id", "probe"},
			{"batchaudit.record.id", "R-" + r.EventID}, {"batchaudit.target.name", "probe.table"}} {
			fmt.Fprintf(&b, `{"key":%q,"value":{"stringValue":%q}},`, kv[0], kv[1])
		}
		b.WriteString(`{"key":"deep","value":`)
		b.WriteString(strings.Repeat(`{"arrayValue":{"values":[`, r.Levels))
		b.WriteString(`{"intValue":"1"}`)
		b.WriteString(strings.Repeat(`]}}`, r.Levels))
		b.WriteString(`}]}`)
	}
	b.WriteString(`]}]}]}`)
	return []byte(b.String())
}

func strValue(s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), s)
}

func appendKV(dst []byte, key string, anyValue []byte) []byte {
	kv := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), key)
	kv = appendMessage(kv, 2, anyValue)
	return appendMessage(dst, 6, kv) // LogRecord.attributes
}

func appendMessage(dst []byte, field protowire.Number, msg []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(dst, field, protowire.BytesType), msg)
}

// nestedArrays is an AnyValue holding levels nested ArrayValues around an
// int: sizes are computed inside out, then the bytes written outside in.
func nestedArrays(levels int) []byte {
	inner := []byte{3 << 3, 1}     // AnyValue.int_value = 1
	value := make([]int, levels+1) // size of the AnyValue at each level
	array := make([]int, levels+1) // size of the ArrayValue it holds
	value[0] = len(inner)
	for i := 1; i <= levels; i++ {
		array[i] = 1 + protowire.SizeVarint(uint64(value[i-1])) + value[i-1]
		value[i] = 1 + protowire.SizeVarint(uint64(array[i])) + array[i]
	}
	out := make([]byte, 0, value[levels])
	for i := levels; i >= 1; i-- {
		out = protowire.AppendVarint(append(out, 5<<3|2), uint64(array[i]))   // AnyValue.array_value
		out = protowire.AppendVarint(append(out, 1<<3|2), uint64(value[i-1])) // ArrayValue.values
	}
	return append(out, inner...)
}

// rawCodec sends and receives gRPC messages as the bytes they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

// ExportLogsGRPC sends a raw ExportLogsServiceRequest to the collector's
// OTLP gRPC endpoint and returns the raw response.
func (c *Collector) ExportLogsGRPC(ctx context.Context, req []byte) ([]byte, error) {
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", c.Ports.GRPC), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var resp []byte
	err = conn.Invoke(ctx, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", &req, &resp, grpc.ForceCodec(rawCodec{}))
	return resp, err
}
