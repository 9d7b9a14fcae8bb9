package proxy

// The protocol's message types (the byte that starts every message after
// start-up), by PostgreSQL's names ("Message Formats" in its manual). A
// byte means different messages in the two directions ('D' is Describe
// from a client, DataRow from a server): the names say which.

// Sent by a client.
const (
	msgBind         byte = 'B'
	msgClose        byte = 'C'
	msgCopyData     byte = 'd' // both directions
	msgCopyDone     byte = 'c' // both directions
	msgCopyFail     byte = 'f'
	msgDescribe     byte = 'D'
	msgExecute      byte = 'E'
	msgFlush        byte = 'H'
	msgFunctionCall byte = 'F'
	msgParse        byte = 'P'
	msgQuery        byte = 'Q'
	msgSync         byte = 'S'
	msgTerminate    byte = 'X'
)

// Sent by a server.
const (
	msgBackendKeyData       byte = 'K'
	msgBindComplete         byte = '2'
	msgCloseComplete        byte = '3'
	msgCommandComplete      byte = 'C'
	msgCopyBothResponse     byte = 'W'
	msgCopyInResponse       byte = 'G'
	msgCopyOutResponse      byte = 'H'
	msgDataRow              byte = 'D'
	msgEmptyQueryResponse   byte = 'I'
	msgErrorResponse        byte = 'E'
	msgNoData               byte = 'n'
	msgNoticeResponse       byte = 'N'
	msgNotificationResponse byte = 'A'
	msgParameterDescription byte = 't'
	msgParameterStatus      byte = 'S'
	msgParseComplete        byte = '1'
	msgPortalSuspended      byte = 's'
	msgReadyForQuery        byte = 'Z'
	msgRowDescription       byte = 'T'
)

// What Describe and Close name: a prepared statement or a portal.
const (
	objStatement byte = 'S'
	objPortal    byte = 'P'
)

// ReadyForQuery's transaction status.
const (
	txIdle    byte = 'I' // not in a transaction block
	txInBlock byte = 'T'
	txFailed  byte = 'E' // in a failed transaction block
)

// A server's one-byte answer to SSLRequest (and GSSEncRequest).
const (
	sslAccepted byte = 'S'
	sslRefused  byte = 'N'
)
