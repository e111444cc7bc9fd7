/// <reference types="node" />
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { describe, expect, it } from 'vitest'

import { restrictAudioCodecs } from '../src/softphone/sdp'

// npm test runs in the web folder.
const fixture = (name: string): string => readFileSync(join(process.cwd(), 'tests', 'fixtures', name), 'utf8')

function audioFormats(sdp: string): string[] {
  const mline = sdp.split(/\r?\n/).find((l) => l.startsWith('m=audio')) ?? ''
  return mline.split(' ').slice(3)
}

describe('the softphone speaks G.711 and RFC 4733 only', () => {
  it("Chromium's own offer is cut down to PCMA, PCMU and telephone-event, PCMA first", () => {
    const offer = fixture('chromium-offer.sdp')
    expect(audioFormats(offer)).toContain('111') // opus, before
    const out = restrictAudioCodecs(offer)
    expect(audioFormats(out)).toEqual(['8', '0', '126'])
    expect(out).not.toMatch(/opus|red\/48000|ISAC|G722|CN\//)
    expect(out).toContain('a=rtpmap:126 telephone-event/8000')
    // Everything that is not about formats stays.
    expect(out).toContain('a=fingerprint:sha-256')
    expect(out).toContain('a=rtcp-mux')
  })

  it("Asterisk's recorded offer and Chromium's recorded answer pass unchanged", () => {
    for (const name of ['asterisk-offer.sdp', 'chromium-answer.sdp']) {
      const sdp = fixture(name)
      expect(restrictAudioCodecs(sdp)).toBe(sdp)
      expect(audioFormats(sdp)).toEqual(['8', '0', '101'])
    }
  })

  it('an offer without any G.711 is left alone to fail honestly', () => {
    const sdp = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n'
    expect(restrictAudioCodecs(sdp)).toBe(sdp)
  })
})
