package store

import (
	"encoding/json"
	"fmt"

	"github.com/batchaudit/batchaudit/auditevent"
)

// FallbackDocument is what is kept of an event that has no canonical form
// (NaN, an integer beyond 2^53): its content as JSON with every number as
// text, so nothing it carried is lost.
func FallbackDocument(e *auditevent.Event) []byte {
	b, err := json.Marshal(numbersAsText(e.Canonical()))
	if err != nil {
		return fmt.Appendf(nil, "%q", fmt.Sprint(e.Canonical()))
	}
	return b
}

func numbersAsText(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = numbersAsText(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = numbersAsText(x)
		}
		return out
	case float64, float32, int, int64, int32, uint, uint64, uint32:
		return fmt.Sprint(t)
	}
	return v
}
