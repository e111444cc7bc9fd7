// Audio codecs of the softphone: G.711 only (PCMA first, then PCMU) plus
// telephone-event for RFC 4733 DTMF. Asterisk's agent endpoints allow
// alaw,ulaw; offering only these keeps Asterisk from transcoding and the
// payload types the ones the recordings show (8 PCMA, 0 PCMU, 101 events).
const PREFERRED = ['pcma/8000', 'pcmu/8000', 'telephone-event/8000']

/** `sdp` with every audio format but PCMA, PCMU and telephone-event removed. */
export function restrictAudioCodecs(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n'
  const sections: string[][] = [[]]
  for (const line of sdp.split(eol)) {
    if (line.startsWith('m=')) sections.push([])
    sections[sections.length - 1]?.push(line)
  }
  return sections.map((lines) => (lines[0]?.startsWith('m=audio') ? restrictSection(lines) : lines)).flat().join(eol)
}

function restrictSection(lines: string[]): string[] {
  const codecOf = new Map<string, string>()
  for (const line of lines) {
    const m = /^a=rtpmap:(\d+) ([^\s]+)/.exec(line)
    if (m?.[1] !== undefined && m[2] !== undefined) codecOf.set(m[1], m[2].toLowerCase())
  }
  const [mline = '', ...rest] = lines
  const parts = mline.split(' ')
  const formats = parts.slice(3)
  // Static payload types 0 and 8 may come without an rtpmap line.
  const codec = (pt: string): string => codecOf.get(pt) ?? (pt === '0' ? 'pcmu/8000' : pt === '8' ? 'pcma/8000' : '')
  const keep = formats
    .filter((pt) => PREFERRED.includes(codec(pt)))
    .sort((a, b) => PREFERRED.indexOf(codec(a)) - PREFERRED.indexOf(codec(b)))
  // Nothing we can speak: leave the section as it is and let the answer fail
  // honestly (488) instead of producing an invalid m= line.
  if (!keep.some((pt) => codec(pt) !== 'telephone-event/8000')) return lines
  const kept = new Set(keep)
  const body = rest.filter((line) => {
    const m = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)[ ]/.exec(line)
    return m?.[1] === undefined || kept.has(m[1])
  })
  return [[...parts.slice(0, 3), ...keep].join(' '), ...body]
}
