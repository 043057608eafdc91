// KaneProtocol.swift — the KANE wire protocol (data topic "kane").
// Generated from protocol/messages.py by `uv run python -m protocol.generate`. Do not edit.

import Foundation

public let kaneProtocolVersion = 1
public let kaneTopic = "kane"
/// The largest packet the server accepts from the phone, in bytes.
public let kaneMaxIncomingBytes = 16384

/// Any JSON value, for free-form fields such as tool arguments.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// The `data` of a message of the protocol.
public protocol KaneMessage: Codable, Equatable, Sendable {
    static var messageType: MessageType { get }
}

/// One packet: `{"v": 1, "type": …, "session_id": …, "seq": …, "ts": …, "data": {…}}`.
/// `seq` rises by one per session and direction; `ts` is milliseconds since the epoch.
public struct Envelope<T: Codable>: Codable {
    public var v: Int
    public var type: MessageType
    public var sessionId: String
    public var seq: Int
    public var ts: Int64
    public var data: T

    enum CodingKeys: String, CodingKey {
        case v, type, sessionId = "session_id", seq, ts, data
    }

    public init(v: Int = kaneProtocolVersion, type: MessageType, sessionId: String, seq: Int,
                ts: Int64, data: T) {
        self.v = v
        self.type = type
        self.sessionId = sessionId
        self.seq = seq
        self.ts = ts
        self.data = data
    }
}

extension Envelope: Equatable where T: Equatable {}
extension Envelope: Sendable where T: Sendable {}

extension Envelope where T: KaneMessage {
    /// An envelope for `data`, stamped now.
    public init(sessionId: String, seq: Int, data: T,
                ts: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.init(type: T.messageType, sessionId: sessionId, seq: seq, ts: ts, data: data)
    }
}

/// The wire `type` of every message, both directions.
public enum MessageType: String, Codable, Sendable, CaseIterable {
    case sessionStarted = "session_started"
    case partialTranscript = "partial_transcript"
    case finalTranscript = "final_transcript"
    case questDraft = "quest_draft"
    case questCreated = "quest_created"
    case questUpdated = "quest_updated"
    case questCompleted = "quest_completed"
    case questDeleted = "quest_deleted"
    case successCriteriaSet = "success_criteria_set"
    case toolCall = "tool_call"
    case botResponse = "bot_response"
    case botState = "bot_state"
    case emotionChanged = "emotion_changed"
    case planDraft = "plan_draft"
    case error
    case sessionEnded = "session_ended"
    case uiState = "ui_state"
    case uiEvent = "ui_event"
    case questEdit = "quest_edit"
    case hello
}

/// One of main, side.
public enum QuestKind: String, Codable, Sendable {
    case main
    case side
}

/// One of active, completed, deleted.
public enum QuestStatus: String, Codable, Sendable {
    case active
    case completed
    case deleted
}

/// One of listening, thinking, speaking.
public enum BotStateName: String, Codable, Sendable {
    case listening
    case thinking
    case speaking
}

/// One of tap, swipe, edit, long_press, scroll.
public enum UiAction: String, Codable, Sendable {
    case tap
    case swipe
    case edit
    case longPress = "long_press"
    case scroll
}

// MARK: - Server → phone

/// The session is live; the first message of every session.
public struct SessionStarted: KaneMessage {
    public static let messageType: MessageType = .sessionStarted

    /// The session's id, as in every envelope.
    public var sessionId: String
    /// The signed-in user the session belongs to.
    public var userId: String
    /// Which engine each stage uses, e.g. `{"stt": "deepgram", "tts": "espeak"}`.
    public var engines: [String: String]
    /// The protocol version the server speaks.
    public var protocolVersion: Int

    enum CodingKeys: String, CodingKey {
        case sessionId = "session_id"
        case userId = "user_id"
        case engines
        case protocolVersion = "protocol_version"
    }

    public init(
        sessionId: String,
        userId: String,
        engines: [String: String],
        protocolVersion: Int = 1
    ) {
        self.sessionId = sessionId
        self.userId = userId
        self.engines = engines
        self.protocolVersion = protocolVersion
    }
}

/// An interim transcript of what the person is saying; later ones replace it.
public struct PartialTranscript: KaneMessage {
    public static let messageType: MessageType = .partialTranscript

    /// The words heard so far in this utterance.
    public var text: String
    /// The recognizer's confidence, 0–1, when it gives one.
    public var confidence: Double?

    enum CodingKeys: String, CodingKey {
        case text
        case confidence
    }

    public init(
        text: String,
        confidence: Double? = nil
    ) {
        self.text = text
        self.confidence = confidence
    }
}

/// The final transcript of one utterance.
public struct FinalTranscript: KaneMessage {
    public static let messageType: MessageType = .finalTranscript

    /// What the person said.
    public var text: String
    /// The recognizer's confidence, 0–1, when it gives one.
    public var confidence: Double?

    enum CodingKeys: String, CodingKey {
        case text
        case confidence
    }

    public init(
        text: String,
        confidence: Double? = nil
    ) {
        self.text = text
        self.confidence = confidence
    }
}

/// A quest card forming while the person is still speaking.
/// Later drafts with the same `draft_id` replace earlier ones.
public struct QuestDraft: KaneMessage {
    public static let messageType: MessageType = .questDraft

    /// Stable id of this draft across its updates.
    public var draftId: String
    /// The quest's title as understood so far.
    public var title: String
    /// Main quest or side quest.
    public var kind: QuestKind
    /// How sure the detector is, 0–1.
    public var confidence: Double
    /// The words the draft was made from.
    public var sourceWords: String
    /// True when the person took it back ("actually, no…").
    public var retracted: Bool

    enum CodingKeys: String, CodingKey {
        case draftId = "draft_id"
        case title
        case kind
        case confidence
        case sourceWords = "source_words"
        case retracted
    }

    public init(
        draftId: String,
        title: String,
        kind: QuestKind,
        confidence: Double,
        sourceWords: String,
        retracted: Bool = false
    ) {
        self.draftId = draftId
        self.title = title
        self.kind = kind
        self.confidence = confidence
        self.sourceWords = sourceWords
        self.retracted = retracted
    }
}

/// A quest was created.
public struct QuestCreated: KaneMessage {
    public static let messageType: MessageType = .questCreated

    /// The new quest.
    public var quest: Quest

    enum CodingKeys: String, CodingKey {
        case quest
    }

    public init(
        quest: Quest
    ) {
        self.quest = quest
    }
}

/// A quest changed.
public struct QuestUpdated: KaneMessage {
    public static let messageType: MessageType = .questUpdated

    /// The quest that changed.
    public var questId: String
    /// Only the fields that changed, with their new values (keys as in `Quest`).
    public var changes: [String: JSONValue]
    /// The quest's version after the change.
    public var version: Int

    enum CodingKeys: String, CodingKey {
        case questId = "quest_id"
        case changes
        case version
    }

    public init(
        questId: String,
        changes: [String: JSONValue],
        version: Int
    ) {
        self.questId = questId
        self.changes = changes
        self.version = version
    }
}

/// A quest was completed.
public struct QuestCompleted: KaneMessage {
    public static let messageType: MessageType = .questCompleted

    /// The completed quest.
    public var questId: String

    enum CodingKeys: String, CodingKey {
        case questId = "quest_id"
    }

    public init(
        questId: String
    ) {
        self.questId = questId
    }
}

/// A quest was deleted.
public struct QuestDeleted: KaneMessage {
    public static let messageType: MessageType = .questDeleted

    /// The deleted quest.
    public var questId: String

    enum CodingKeys: String, CodingKey {
        case questId = "quest_id"
    }

    public init(
        questId: String
    ) {
        self.questId = questId
    }
}

/// A quest's success criteria were set (replacing the earlier ones).
public struct SuccessCriteriaSet: KaneMessage {
    public static let messageType: MessageType = .successCriteriaSet

    /// The quest.
    public var questId: String
    /// The criteria, in order.
    public var criteria: [String]

    enum CodingKeys: String, CodingKey {
        case questId = "quest_id"
        case criteria
    }

    public init(
        questId: String,
        criteria: [String]
    ) {
        self.questId = questId
        self.criteria = criteria
    }
}

/// The coach is about to call a tool; sent before the tool runs.
public struct ToolCall: KaneMessage {
    public static let messageType: MessageType = .toolCall

    /// The LLM's id for this call.
    public var callId: String
    /// The tool's name.
    public var name: String
    /// The tool's arguments.
    public var arguments: [String: JSONValue]

    enum CodingKeys: String, CodingKey {
        case callId = "call_id"
        case name
        case arguments
    }

    public init(
        callId: String,
        name: String,
        arguments: [String: JSONValue]
    ) {
        self.callId = callId
        self.name = name
        self.arguments = arguments
    }
}

/// What the coach is about to say; sent before it is spoken.
public struct BotResponse: KaneMessage {
    public static let messageType: MessageType = .botResponse

    /// The reply's text.
    public var text: String

    enum CodingKeys: String, CodingKey {
        case text
    }

    public init(
        text: String
    ) {
        self.text = text
    }
}

/// The coach's state changed.
public struct BotState: KaneMessage {
    public static let messageType: MessageType = .botState

    /// Listening, thinking or speaking.
    public var state: BotStateName

    enum CodingKeys: String, CodingKey {
        case state
    }

    public init(
        state: BotStateName
    ) {
        self.state = state
    }
}

/// The person's estimated emotion changed.
public struct EmotionChanged: KaneMessage {
    public static let messageType: MessageType = .emotionChanged

    /// The leading emotion, e.g. "calm".
    public var label: String
    /// Score of each emotion the estimator knows.
    public var scores: [String: Double]
    /// Unpleasant (-1) to pleasant (1).
    public var valence: Double
    /// Calm (low) to excited (high).
    public var arousal: Double

    enum CodingKeys: String, CodingKey {
        case label
        case scores
        case valence
        case arousal
    }

    public init(
        label: String,
        scores: [String: Double],
        valence: Double,
        arousal: Double
    ) {
        self.label = label
        self.scores = scores
        self.valence = valence
        self.arousal = arousal
    }
}

/// Quests pre-drafted for today from what KANE has learned about the person.
public struct PlanDraft: KaneMessage {
    public static let messageType: MessageType = .planDraft

    /// The drafted quests, main quest first.
    public var quests: [PlannedQuest]

    enum CodingKeys: String, CodingKey {
        case quests
    }

    public init(
        quests: [PlannedQuest]
    ) {
        self.quests = quests
    }
}

/// Something went wrong, usually with a message the phone sent.
public struct ErrorMessage: KaneMessage {
    public static let messageType: MessageType = .error

    /// A machine-readable code, e.g. "invalid" or "too_large".
    public var code: String
    /// What went wrong, for people.
    public var message: String
    /// The `seq` of the phone's message this answers, when known.
    public var refSeq: Int?

    enum CodingKeys: String, CodingKey {
        case code
        case message
        case refSeq = "ref_seq"
    }

    public init(
        code: String,
        message: String,
        refSeq: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.refSeq = refSeq
    }
}

/// The session is over; the last message of every session.
public struct SessionEnded: KaneMessage {
    public static let messageType: MessageType = .sessionEnded

    /// Why it ended, e.g. "user_left".
    public var reason: String

    enum CodingKeys: String, CodingKey {
        case reason
    }

    public init(
        reason: String
    ) {
        self.reason = reason
    }
}

// MARK: - Phone → server

/// What the phone shows right now.
public struct UiState: KaneMessage {
    public static let messageType: MessageType = .uiState

    /// The screen's name.
    public var currentScreen: String
    /// The quest the person has selected, if any.
    public var selectedQuest: String?
    /// The quests on screen.
    public var visibleQuestIds: [String]

    enum CodingKeys: String, CodingKey {
        case currentScreen = "current_screen"
        case selectedQuest = "selected_quest"
        case visibleQuestIds = "visible_quest_ids"
    }

    public init(
        currentScreen: String,
        selectedQuest: String? = nil,
        visibleQuestIds: [String]
    ) {
        self.currentScreen = currentScreen
        self.selectedQuest = selectedQuest
        self.visibleQuestIds = visibleQuestIds
    }
}

/// The person did something in the app.
public struct UiEvent: KaneMessage {
    public static let messageType: MessageType = .uiEvent

    /// What kind of gesture.
    public var action: UiAction
    /// What it was done to, e.g. "quest:q1".
    public var target: String
    /// A value that came with it, e.g. edited text.
    public var value: String?

    enum CodingKeys: String, CodingKey {
        case action
        case target
        case value
    }

    public init(
        action: UiAction,
        target: String,
        value: String? = nil
    ) {
        self.action = action
        self.target = target
        self.value = value
    }
}

/// The person changed a quest by hand.
public struct QuestEdit: KaneMessage {
    public static let messageType: MessageType = .questEdit

    /// The quest.
    public var questId: String
    /// What changed.
    public var changes: QuestChanges

    enum CodingKeys: String, CodingKey {
        case questId = "quest_id"
        case changes
    }

    public init(
        questId: String,
        changes: QuestChanges
    ) {
        self.questId = questId
        self.changes = changes
    }
}

/// The phone introduces itself; its first message of a session.
public struct Hello: KaneMessage {
    public static let messageType: MessageType = .hello

    /// The app's version, e.g. "1.4.2".
    public var appVersion: String
    /// Features the app supports, e.g. "quest_drafts".
    public var capabilities: [String]

    enum CodingKeys: String, CodingKey {
        case appVersion = "app_version"
        case capabilities
    }

    public init(
        appVersion: String,
        capabilities: [String]
    ) {
        self.appVersion = appVersion
        self.capabilities = capabilities
    }
}

// MARK: - Nested types

/// A quest as the server holds it (nested in messages, not a message itself).
public struct Quest: Codable, Equatable, Sendable {
    /// The quest's id.
    public var id: String
    /// The quest's title.
    public var title: String
    /// Main quest or side quest.
    public var kind: QuestKind
    /// Active, completed or deleted.
    public var status: QuestStatus
    /// How the person will know it is done.
    public var successCriteria: [String]
    /// Rises by one with every change.
    public var version: Int

    enum CodingKeys: String, CodingKey {
        case id
        case title
        case kind
        case status
        case successCriteria = "success_criteria"
        case version
    }

    public init(
        id: String,
        title: String,
        kind: QuestKind,
        status: QuestStatus,
        successCriteria: [String] = [],
        version: Int
    ) {
        self.id = id
        self.title = title
        self.kind = kind
        self.status = status
        self.successCriteria = successCriteria
        self.version = version
    }
}

/// A quest pre-drafted for today (nested in `PlanDraft`).
public struct PlannedQuest: Codable, Equatable, Sendable {
    /// The quest's title.
    public var title: String
    /// Main quest or side quest.
    public var kind: QuestKind
    /// How sure the planner is, 0–1.
    public var confidence: Double

    enum CodingKeys: String, CodingKey {
        case title
        case kind
        case confidence
    }

    public init(
        title: String,
        kind: QuestKind,
        confidence: Double
    ) {
        self.title = title
        self.kind = kind
        self.confidence = confidence
    }
}

/// The fields of a quest the person changed by hand; at least one is set.
public struct QuestChanges: Codable, Equatable, Sendable {
    /// The new title.
    public var title: String?
    /// The new kind.
    public var kind: QuestKind?
    /// The new success criteria, replacing the old ones.
    public var successCriteria: [String]?
    /// The new status.
    public var status: QuestStatus?

    enum CodingKeys: String, CodingKey {
        case title
        case kind
        case successCriteria = "success_criteria"
        case status
    }

    public init(
        title: String? = nil,
        kind: QuestKind? = nil,
        successCriteria: [String]? = nil,
        status: QuestStatus? = nil
    ) {
        self.title = title
        self.kind = kind
        self.successCriteria = successCriteria
        self.status = status
    }
}

/// Any server → phone packet, decoded by its type. Types this build does not know
/// (the server may add some) decode as `.unknown`; skip them.
public enum ServerEvent: Decodable, Sendable {
    case sessionStarted(Envelope<SessionStarted>)
    case partialTranscript(Envelope<PartialTranscript>)
    case finalTranscript(Envelope<FinalTranscript>)
    case questDraft(Envelope<QuestDraft>)
    case questCreated(Envelope<QuestCreated>)
    case questUpdated(Envelope<QuestUpdated>)
    case questCompleted(Envelope<QuestCompleted>)
    case questDeleted(Envelope<QuestDeleted>)
    case successCriteriaSet(Envelope<SuccessCriteriaSet>)
    case toolCall(Envelope<ToolCall>)
    case botResponse(Envelope<BotResponse>)
    case botState(Envelope<BotState>)
    case emotionChanged(Envelope<EmotionChanged>)
    case planDraft(Envelope<PlanDraft>)
    case error(Envelope<ErrorMessage>)
    case sessionEnded(Envelope<SessionEnded>)
    case unknown(type: String)

    private struct Header: Decodable {
        let type: String
    }

    public init(from decoder: Decoder) throws {
        let header = try Header(from: decoder)
        switch header.type {
        case "session_started":
            self = .sessionStarted(try Envelope<SessionStarted>(from: decoder))
        case "partial_transcript":
            self = .partialTranscript(try Envelope<PartialTranscript>(from: decoder))
        case "final_transcript":
            self = .finalTranscript(try Envelope<FinalTranscript>(from: decoder))
        case "quest_draft":
            self = .questDraft(try Envelope<QuestDraft>(from: decoder))
        case "quest_created":
            self = .questCreated(try Envelope<QuestCreated>(from: decoder))
        case "quest_updated":
            self = .questUpdated(try Envelope<QuestUpdated>(from: decoder))
        case "quest_completed":
            self = .questCompleted(try Envelope<QuestCompleted>(from: decoder))
        case "quest_deleted":
            self = .questDeleted(try Envelope<QuestDeleted>(from: decoder))
        case "success_criteria_set":
            self = .successCriteriaSet(try Envelope<SuccessCriteriaSet>(from: decoder))
        case "tool_call":
            self = .toolCall(try Envelope<ToolCall>(from: decoder))
        case "bot_response":
            self = .botResponse(try Envelope<BotResponse>(from: decoder))
        case "bot_state":
            self = .botState(try Envelope<BotState>(from: decoder))
        case "emotion_changed":
            self = .emotionChanged(try Envelope<EmotionChanged>(from: decoder))
        case "plan_draft":
            self = .planDraft(try Envelope<PlanDraft>(from: decoder))
        case "error":
            self = .error(try Envelope<ErrorMessage>(from: decoder))
        case "session_ended":
            self = .sessionEnded(try Envelope<SessionEnded>(from: decoder))
        default:
            self = .unknown(type: header.type)
        }
    }
}
