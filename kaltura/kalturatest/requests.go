package kalturatest

import "strings"

// PlayerMultirequest is a player's first multirequest body (about 2 KB): a
// widget session, then calls that use its KS through {1:result:ks}, as
// kaltura-player-js sends them. The benchmarks send it.
var PlayerMultirequest = func() string {
	fields := strings.Repeat("id,referenceId,name,description,thumbnailUrl,dataUrl,duration,msDuration,flavorParamsIds,mediaType,type,tags,dvrStatus,externalSourceType,status,", 9)
	return `{"1":{"service":"session","action":"startWidgetSession","widgetId":"_123"},` +
		`"2":{"service":"baseEntry","action":"list","ks":"{1:result:ks}","filter":{"redirectFromEntryId":"1_abcdefgh"},"responseProfile":{"type":1,"fields":"` + fields + `"}},` +
		`"3":{"service":"baseEntry","action":"getPlaybackContext","entryId":"{2:result:objects:0:id}","ks":"{1:result:ks}","contextDataParams":{"objectType":"KalturaContextDataParams","flavorTags":"all"}},` +
		`"4":{"service":"metadata_metadata","action":"list","filter":{"objectType":"KalturaMetadataFilter","objectIdEqual":"{2:result:objects:0:id}","metadataObjectTypeEqual":"1"},"ks":"{1:result:ks}"},` +
		`"apiVersion":"3.3.0","format":1,"ks":"","clientTag":"html5:v3.17.95","partnerId":123}`
}()
