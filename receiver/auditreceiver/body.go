package auditreceiver

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// bodyError is a request body the receiver will not read: too large (413),
// an unsupported encoding (415) or a corrupt stream (400).
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// bodyReader reads request bodies within limits.max_body_bytes and inflates
// them within limits.max_decompressed_bytes.
type bodyReader struct {
	maxBody, maxInflated int64
	readTimeout          time.Duration
	encodings            []string
	zstdPool             sync.Pool
}

func newBodyReader(cfg *Config) *bodyReader {
	b := &bodyReader{maxBody: cfg.Limits.MaxBodyBytes, maxInflated: cfg.Limits.MaxDecompressedBytes, encodings: supportedCompression}
	if hc := cfg.Protocols.HTTP.Get(); hc != nil {
		if hc.CompressionAlgorithms != nil {
			b.encodings = hc.CompressionAlgorithms
		}
		b.readTimeout = hc.ReadTimeout
	}
	return b
}

func (b *bodyReader) read(req *http.Request) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding")))
	if enc == "identity" {
		enc = ""
	}
	if !slices.Contains(b.encodings, enc) {
		return nil, &bodyError{http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q (accepted: %s)",
			enc, strings.Join(slices.DeleteFunc(slices.Clone(b.encodings), func(s string) bool { return s == "" }), ", "))}
	}
	if req.ContentLength > b.maxBody {
		return nil, b.tooLarge()
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, b.maxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds protocols::http::max_request_body_size (%d bytes)", mbe.Limit)}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, &bodyError{http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within protocols::http::read_timeout (%s)", b.readTimeout)}
		}
		return nil, &bodyError{http.StatusBadRequest, "reading request body: " + err.Error()}
	}
	if int64(len(raw)) > b.maxBody {
		return nil, b.tooLarge()
	}
	if enc == "" {
		return raw, nil
	}
	return b.inflate(enc, raw)
}

func (b *bodyReader) tooLarge() error {
	return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds limits::max_body_bytes (%d bytes); split the request", b.maxBody)}
}

func (b *bodyReader) inflate(enc string, raw []byte) ([]byte, error) {
	var rd io.Reader
	var err error
	switch enc {
	case "gzip":
		rd, err = gzip.NewReader(bytes.NewReader(raw))
	case "zlib", "deflate": // HTTP "deflate" is the zlib format (RFC 9110)
		rd, err = zlib.NewReader(bytes.NewReader(raw))
	case "zstd":
		dec, derr := b.zstdDecoder()
		if derr != nil {
			return nil, &bodyError{http.StatusInternalServerError, "zstd decoder: " + derr.Error()}
		}
		defer func() {
			if dec.Reset(nil) == nil {
				b.zstdPool.Put(dec)
			}
		}()
		err = dec.Reset(bytes.NewReader(raw))
		rd = dec
	}
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, fmt.Sprintf("invalid %s body: %v", enc, err)}
	}
	out, err := readCapped(rd, b.maxInflated)
	if errors.Is(err, errInflatedTooLarge) || errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed body exceeds limits::max_decompressed_bytes (%d bytes)", b.maxInflated)}
	}
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, fmt.Sprintf("invalid %s body: %v", enc, err)}
	}
	return out, nil
}

var errInflatedTooLarge = errors.New("too large")

// readCapped reads at most limit bytes; a stream that has more fails without
// the rest being inflated, so a decompression bomb costs at most limit bytes.
func readCapped(rd io.Reader, limit int64) (out []byte, err error) {
	defer func() {
		// Some decoders panic on crafted input; the body is then invalid.
		if p := recover(); p != nil {
			err = fmt.Errorf("decompression failed: %v", p)
		}
	}()
	out, err = io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errInflatedTooLarge
	}
	return out, nil
}

func (b *bodyReader) zstdDecoder() (*zstd.Decoder, error) {
	if d, ok := b.zstdPool.Get().(*zstd.Decoder); ok {
		return d, nil
	}
	window := uint64(min(max(b.maxInflated, zstd.MinWindowSize), zstd.MaxWindowSize))
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(window),
		zstd.WithDecoderMaxMemory(uint64(b.maxInflated)+1))
}
