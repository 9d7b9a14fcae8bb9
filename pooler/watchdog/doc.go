// Package watchdog carries the pooler pair's election (package
// election) between members: heartbeat packets signed with a shared key
// (HMAC-SHA256, checked before anything is parsed), numbered and
// timestamped so that replays are dropped. It must not know the proxy;
// pooler wires it to the VIP.
package watchdog
