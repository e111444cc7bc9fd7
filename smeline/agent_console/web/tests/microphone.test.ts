import { describe, expect, it, vi } from 'vitest'

import { microphoneMessage, requestMicrophone } from '../src/microphone'

describe('asking for the microphone at login', () => {
  it('on plain http (not localhost) says HTTPS is needed, without asking', async () => {
    const getUserMedia = vi.fn()
    const check = await requestMicrophone({ isSecureContext: false, mediaDevices: { getUserMedia } })
    expect(check.result).toBe('insecure')
    expect(getUserMedia).not.toHaveBeenCalled()
    expect(microphoneMessage(check)).toContain('HTTPS')
  })

  it('a refusal is "denied", with a message that chat and work orders still work', async () => {
    const getUserMedia = vi.fn().mockRejectedValue(Object.assign(new Error('no'), { name: 'NotAllowedError' }))
    const check = await requestMicrophone({ isSecureContext: true, mediaDevices: { getUserMedia } })
    expect(check.result).toBe('denied')
    expect(microphoneMessage(check)).toContain('麦克风被拒绝')
    expect(microphoneMessage(check)).toContain('网上咨询和工单不受影响')
  })

  it('granted: the test stream is stopped at once so the softphone can have the device', async () => {
    const stop = vi.fn()
    const getUserMedia = vi.fn().mockResolvedValue({ getTracks: () => [{ stop }] })
    const check = await requestMicrophone({ isSecureContext: true, mediaDevices: { getUserMedia } })
    expect(check.result).toBe('granted')
    expect(getUserMedia).toHaveBeenCalledWith({ audio: true })
    expect(stop).toHaveBeenCalledOnce()
  })

  it('no microphone plugged in is told apart from a refusal', async () => {
    const getUserMedia = vi.fn().mockRejectedValue(Object.assign(new Error('none'), { name: 'NotFoundError' }))
    expect((await requestMicrophone({ isSecureContext: true, mediaDevices: { getUserMedia } })).result).toBe(
      'no_device',
    )
  })
})
