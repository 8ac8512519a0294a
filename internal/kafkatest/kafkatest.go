// Package kafkatest connects tests to the real Kafka broker that
// scripts/kafka.sh starts (make kafka-up) and removes the topics each test
// creates.
//
// Integration tests against Kafka must never pass by not running: Require
// fails the test when the broker is unreachable and skips only when
// BATCHAUDIT_SKIP_KAFKA=1 is set on purpose, and says so loudly. Tests
// share the broker, so every topic and group gets a name from Unique.
package kafkatest

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/batchaudit/batchaudit/internal/estest"
)

const (
	// EnvBrokers overrides the bootstrap server(s), comma-separated.
	EnvBrokers = "BATCHAUDIT_KAFKA_BROKERS"
	// EnvSkip, set to "1", makes Require skip instead of fail when no
	// broker is running.
	EnvSkip = "BATCHAUDIT_SKIP_KAFKA"
	// DefaultBroker is where scripts/kafka.sh starts the broker.
	DefaultBroker = "127.0.0.1:9092"
)

// Brokers returns the bootstrap servers: $BATCHAUDIT_KAFKA_BROKERS or
// DefaultBroker.
func Brokers() []string {
	if b := strings.TrimSpace(os.Getenv(EnvBrokers)); b != "" {
		return strings.Split(b, ",")
	}
	return []string{DefaultBroker}
}

// Require returns the bootstrap servers of the test broker. It skips the
// test only when BATCHAUDIT_SKIP_KAFKA=1, and fails it when the broker does
// not answer.
func Require(t testing.TB) []string {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("SKIPPING Kafka integration test because %s=1 is set: this test did NOT run. "+
			"Unset it and run `make kafka-up` to run it.", EnvSkip)
	}
	brokers := Brokers()
	conn, err := net.DialTimeout("tcp", brokers[0], 5*time.Second)
	if err != nil {
		t.Fatalf("kafkatest: no Kafka broker at %s (%v). Start the test broker with `make kafka-up` "+
			"(scripts/kafka.sh up), or point %s at one; set %s=1 only to skip Kafka tests on purpose.", brokers[0], err, EnvBrokers, EnvSkip)
	}
	conn.Close()
	return brokers
}

// Unique returns a topic or group name no other test uses.
func Unique(t testing.TB, prefix string) string { return estest.UniqueName(t, prefix) }

// Admin returns an admin client on the test broker, closed at cleanup.
func Admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(Require(t)...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// DeleteTopicsAtCleanup deletes the topics when the test ends.
func DeleteTopicsAtCleanup(t testing.TB, topics ...string) {
	t.Helper()
	adm := Admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			t.Logf("kafkatest: deleting topics %v: %v", topics, err)
		}
	})
}
