package history

import (
	"encoding/json"
	"fmt"
	"io"
)

// Decode reads a history saved by Encode and validates it, so a run can be
// checked again, or a violation replayed, from its file.
func Decode(data []byte) (History, error) {
	var h History
	if err := json.Unmarshal(data, &h); err != nil {
		return History{}, fmt.Errorf("decode history: %w", err)
	}
	if err := h.Validate(); err != nil {
		return History{}, fmt.Errorf("decode history: %w", err)
	}
	return h, nil
}

// Encode writes h as JSON (one line; jq formats it).
func Encode(w io.Writer, h History) error {
	if err := json.NewEncoder(w).Encode(h); err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	return nil
}
