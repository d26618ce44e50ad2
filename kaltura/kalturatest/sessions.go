// The session actions: session.startWidgetSession and
// appToken.startSession as Kaltura runs them, with the appToken's hash,
// expiry and privilege rules.

package kalturatest

import (
	"strconv"
	"strings"
)

// startWidgetSession is session.startWidgetSession: a widget KS for a
// known widget, its expiry capped.
func (e *Emulator) startWidgetSession(p map[string]any) (any, *apiError) {
	if !isset(p, "widgetId") {
		return nil, newErr("MISSING_MANDATORY_PARAMETER", "widgetId")
	}
	wid := paramString(p, "widgetId")
	if !e.widgetIDs[wid] {
		return nil, newErr("INVALID_WIDGET_ID", wid)
	}
	exp, ok := paramInt(p, "expiry")
	if !ok || exp == 0 {
		exp = maxKSExpiry
	}
	exp = min(exp, maxKSExpiry)
	ks := e.IssueKS(Session{PartnerID: e.cfg.PartnerID, UserID: "0", Type: 0, Privileges: "view:*,widget:1", Expiry: e.now() + exp, Widget: true})
	return obj{{"partnerId", e.cfg.PartnerID}, {"ks", ks}, {"userId", 0}, {"objectType", "KalturaStartWidgetSessionResponse"}}, nil
}

// maxKSExpiry is the longest KS lifetime, in seconds (the partner's
// default).
const maxKSExpiry = 86400

func (e *Emulator) appTokenStartSession(c *call, sess Session) (any, *apiError) {
	p := c.params
	reqType := 0
	if s, ok := scalarString(p["type"]); ok && s != "" {
		switch s {
		case "0":
			reqType = 0
		case "2":
			reqType = 2
		default:
			return nil, newErr("INVALID_ENUM_VALUE", s, "type", "KalturaSessionType")
		}
	}
	if !isset(p, "id") {
		return nil, newErr("MISSING_MANDATORY_PARAMETER", "id")
	}
	if !isset(p, "tokenHash") {
		return nil, newErr("MISSING_MANDATORY_PARAMETER", "tokenHash")
	}
	id := paramString(p, "id")
	tokenHash := paramString(p, "tokenHash")
	e.mu.Lock()
	t, ok := e.tokens[id]
	e.mu.Unlock()
	// 1. Lookup within the KS's partner, deleted tokens excluded.
	if !ok || t.Status == 3 || sess.PartnerID != e.cfg.PartnerID {
		return nil, newErr("APP_TOKEN_ID_NOT_FOUND", id)
	}
	// 2. Status.
	if t.Status != 2 {
		return nil, newErr("APP_TOKEN_NOT_ACTIVE", id)
	}
	// 3. Hash over the exact ks string of this request.
	want, err := TokenHash(c.ks, t.Token, t.HashType)
	if err != nil || tokenHash != want {
		return nil, newErr("INVALID_APP_TOKEN_HASH")
	}
	// 4. Expiry.
	now := e.now()
	limit := int64(t.SessionDuration)
	if t.Expiry != 0 {
		limit = min(limit, t.Expiry-now)
		if limit < 0 {
			return nil, newErr("APP_TOKEN_EXPIRED", id)
		}
	}
	exp, _ := paramInt(p, "expiry")
	if exp == 0 {
		exp = limit
	}
	exp = min(exp, limit)
	// 5. Type.
	typ := reqType
	if t.SessionType != nil {
		typ = *t.SessionType
	}
	// 6. User.
	user := paramString(p, "userId")
	if t.SessionUserID != "" {
		user = t.SessionUserID
	}
	// 7-8. Privileges.
	privs := appSessionPrivileges(t.ID, t.SessionPrivileges, paramString(p, "sessionPrivileges"))
	s := Session{PartnerID: sess.PartnerID, UserID: user, Type: typ, Privileges: privs, Expiry: now + exp, AppTokenID: t.ID}
	ks := e.IssueKS(s)
	res := obj{{"ks", ks}, {"sessionType", typ}, {"partnerId", strconv.Itoa(s.PartnerID)}}
	if user != "" {
		res = append(res, kv{"userId", user})
	}
	res = append(res, kv{"expiry", s.Expiry}, kv{"privileges", privs}, kv{"objectType", "KalturaSessionInfo"})
	return res, nil
}

// appSessionPrivileges implements steps 7-8 of §1.3.
func appSessionPrivileges(tokenID, tokenPrivs, requested string) string {
	base := "sessionid:" + tokenID + ",apptoken:" + tokenID
	if tokenPrivs != "" {
		base += "," + tokenPrivs
	}
	ps := parsePrivileges(base)
	for _, req := range parsePrivileges(requested) {
		found := -1
		for i := range ps {
			if ps[i].name == req.name {
				found = i
				break
			}
		}
		switch {
		case found >= 0:
			for _, v := range ps[found].values {
				if v == "*" {
					ps[found].values = req.values
					break
				}
			}
		case !reservedPrivileges[req.name]:
			ps = append(ps, req)
		}
	}
	return formatPrivileges(ps)
}

// reservedPrivileges are the privileges a session asks for in vain unless
// the appToken grants them.
var reservedPrivileges = map[string]bool{}

func init() {
	for _, n := range strings.Split("edit,sview,list,download,downloadasset,editplaylist,sviewplaylist,actionslimit,setrole,restrictingrole,limitentry,iprestrict,urirestrict,enableentitlement,disableentitlement,disableentitlementforentry,disableentitlementforplaylist,privacycontext,enablecategorymoderation,reftime,sessionkey,preview,sessionid,jobtype,apptoken,enablechangeaccount,edituser,enablecaptionmoderation,editadmintags,restrictexplicitliveview,virtualeventid,searchcontext,disablesessiontypecheck", ",") {
		reservedPrivileges[n] = true
	}
}

// privilege is one name and its values ("name:v1/v2").
type privilege struct {
	name   string
	values []string
}

// parsePrivileges reads a privileges string, merging repeated names.
func parsePrivileges(s string) []privilege {
	var out []privilege
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, hasVal := strings.Cut(item, ":")
		var vals []string
		if hasVal {
			vals = strings.Split(val, "/")
		}
		merged := false
		for i := range out {
			if out[i].name == name {
				out[i].values = append(out[i].values, vals...)
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, privilege{name, vals})
		}
	}
	return out
}

// formatPrivileges writes privileges back as a string.
func formatPrivileges(ps []privilege) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		if len(p.values) == 0 {
			parts = append(parts, p.name)
		} else {
			parts = append(parts, p.name+":"+strings.Join(p.values, "/"))
		}
	}
	return strings.Join(parts, ",")
}
