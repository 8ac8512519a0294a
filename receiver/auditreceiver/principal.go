package auditreceiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/client"
	"google.golang.org/grpc/metadata"
)

// identityAttributes are the auth data attributes that name a principal, in
// order of preference: basicauth sets "username", OIDC-style
// authenticators "subject".
var identityAttributes = []string{"subject", "sub", "username", "user", "client_id", "email"}

// principal is who a request was authenticated as, "" when the transport
// authenticates nobody. The auth extension's identity wins; an extension
// that checks a bearer token but names nobody (bearertokenauth) gives a
// fingerprint of the token presented, so requests sent with different
// tokens stay apart without the token itself entering the trail.
func principal(ctx context.Context, authOn bool, authorization string) string {
	if !authOn {
		return ""
	}
	if a := client.FromContext(ctx).Auth; a != nil {
		for _, k := range identityAttributes {
			if s, ok := a.GetAttribute(k).(string); ok && s != "" {
				return s
			}
		}
	}
	if authorization == "" {
		return ""
	}
	token := authorization
	if scheme, rest, ok := strings.Cut(authorization, " "); ok && strings.EqualFold(scheme, "bearer") {
		token = strings.TrimSpace(rest)
	}
	sum := sha256.Sum256([]byte(token))
	return "token:sha256:" + hex.EncodeToString(sum[:8])
}

func (r *auditReceiver) httpPrincipal(req *http.Request) string {
	hc := r.cfg.Protocols.HTTP.Get()
	return principal(req.Context(), hc != nil && hc.Auth.HasValue(), req.Header.Get("Authorization"))
}

func (r *auditReceiver) grpcPrincipal(ctx context.Context) string {
	gc := r.cfg.Protocols.GRPC.Get()
	var authorization string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authorization = v[0]
		}
	}
	return principal(ctx, gc != nil && gc.Auth.HasValue(), authorization)
}
